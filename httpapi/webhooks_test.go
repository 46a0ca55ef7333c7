package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/webhook"
)

const webhooksPath = prefix + "/webhooks"

func withCallback(url string) map[string]any {
	return map[string]any{"taskType": "import", "entityType": "product", "callbackUrl": url}
}

// TestWebhooks: a callbackUrl the service would not send to is a precise
// 422 and stores nothing; an accepted one is on the task and, once the task
// ends, its delivery is listed; subscriptions are created, listed and
// deleted, and refused with 422 as callback URLs are.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	eachStore(t, testWebhooks)
}

func testWebhooks(t *testing.T, st store.Store) {
	e := newEnv(t, st)
	e.do("POST", tasksPath, withCallback("https://hooks.example.com/x")).want(t, http.StatusUnprocessableEntity)
	e.svc.Webhooks = &webhook.Guard{}

	count := func() string { return string(e.do("GET", tasksPath, nil).want(t, http.StatusOK).body) }
	before := count()
	for _, c := range []struct{ name, url, detail string }{
		{"userinfo", "https://user:pw@hooks.example.com/", "user name or password"},
		{"ftp", "ftp://hooks.example.com/", "http or https"},
		{"loopback", "http://127.0.0.1:8080/", "loopback"},
		{"private", "http://10.0.0.7/", "private"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", "link-local"},
		{"localhost", "http://localhost/", "this machine"},
		{"v4-mapped", "http://[::ffff:192.168.0.1]/", "private"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := e.as(t).do("POST", tasksPath, withCallback(c.url)).want(t, http.StatusUnprocessableEntity).problem(t)
			if !hasField(p, "callbackUrl") || !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("got %+v, want a problem on callbackUrl saying %q", p, c.detail)
			}
			sp := e.as(t).do("POST", webhooksPath, map[string]any{"taskType": "import", "url": c.url}).want(t, http.StatusUnprocessableEntity).problem(t)
			if !hasField(sp, "url") || !strings.Contains(sp.Detail, c.detail) {
				t.Fatalf("subscription: got %+v, want a problem on url saying %q", sp, c.detail)
			}
		})
	}
	if after := count(); after != before {
		t.Fatalf("tasks after refused creates: got %s, want %s", after, before)
	}

	sub := e.do("POST", webhooksPath, map[string]any{"taskType": "import", "url": "https://hooks.example.com/imports"}).want(t, http.StatusCreated)
	var s commonops.Subscription
	sub.decode(t, &s)
	if s.ID == "" || s.TaskType != "import" || s.URL != "https://hooks.example.com/imports" || sub.header.Get("Location") != webhooksPath+"/"+s.ID {
		t.Fatalf("subscription: got %+v (Location %q), want it with its id and URL", s, sub.header.Get("Location"))
	}
	for _, bad := range []struct {
		body  any
		field string
	}{
		{map[string]any{"taskType": "bad type", "url": "https://hooks.example.com/"}, "taskType"},
		{map[string]any{"url": "https://hooks.example.com/"}, "taskType"},
		{map[string]any{"taskType": "*"}, "url"},
		{map[string]any{"taskType": "*", "url": "https://hooks.example.com/", "secret": "x"}, "secret"},
	} {
		p := e.do("POST", webhooksPath, bad.body).want(t, http.StatusUnprocessableEntity).problem(t)
		if !hasField(p, bad.field) {
			t.Fatalf("POST /webhooks %v: got %+v, want a problem naming %s", bad.body, p, bad.field)
		}
	}

	tk := e.create(withCallback("https://hooks.example.com/x"))
	if tk.CallbackURL == nil || *tk.CallbackURL != "https://hooks.example.com/x" {
		t.Fatalf("callbackUrl: got %v, want https://hooks.example.com/x", tk.CallbackURL)
	}
	var list deliveryList
	e.do("GET", taskPath(tk.ID, "/deliveries"), nil).want(t, http.StatusOK).decode(t, &list)
	if len(list.Deliveries) != 0 {
		t.Fatalf("deliveries of a pending task: got %d, want 0", len(list.Deliveries))
	}
	e.do("POST", taskPath(tk.ID, "/cancel"), nil).want(t, http.StatusOK)
	e.do("GET", taskPath(tk.ID, "/deliveries"), nil).want(t, http.StatusOK).decode(t, &list)
	urls := map[string]bool{}
	for _, d := range list.Deliveries {
		urls[d.URL] = true
		if d.EventType != commonops.TopicCancelled || d.Status != commonops.DeliveryPending || d.Attempts == nil {
			t.Fatalf("delivery: got %+v, want a pending cancelled delivery with an empty attempt list", d)
		}
	}
	if len(list.Deliveries) != 2 || !urls["https://hooks.example.com/x"] || !urls["https://hooks.example.com/imports"] {
		t.Fatalf("deliveries: got %v, want the callback's and the subscription's", urls)
	}
	e.do("GET", taskPath("6f1d2c3b-4a59-4c55-9a3e-0b7e9d5c2f0a", "/deliveries"), nil).want(t, http.StatusNotFound)

	var subs subscriptionList
	e.do("GET", webhooksPath, nil).want(t, http.StatusOK).decode(t, &subs)
	if len(subs.Subscriptions) != 1 || subs.Subscriptions[0].ID != s.ID {
		t.Fatalf("subscriptions: got %+v, want only %s", subs.Subscriptions, s.ID)
	}
	e.do("DELETE", webhooksPath+"/"+s.ID, nil, "X-Tenant-Id", "other").want(t, http.StatusNotFound)
	e.do("DELETE", webhooksPath+"/"+s.ID, nil).want(t, http.StatusNoContent)
	e.do("DELETE", webhooksPath+"/"+s.ID, nil).want(t, http.StatusNotFound)
	e.do("GET", webhooksPath, nil).want(t, http.StatusOK).decode(t, &subs)
	if len(subs.Subscriptions) != 0 {
		t.Fatalf("subscriptions after the delete: got %d, want 0", len(subs.Subscriptions))
	}
}
