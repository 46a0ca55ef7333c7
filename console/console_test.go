package console_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/commonops/commonops/console"
	"github.com/commonops/commonops/httpapi"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
)

// newServer serves the API with the console mounted, on SQLite, without
// authentication.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	var api http.Handler
	cons := console.New(console.Config{API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.ServeHTTP(w, r) })})
	done := make(chan struct{})
	api = httpapi.NewServer(httpapi.Config{Service: &operations.Service{Store: testdb.SQLite(t)}, Console: cons,
		StreamsDone: done, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return srv
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestPagesCarryTheirPolicies(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, path := range []string{"/console/tasks", "/console/new", "/console/queues", "/console/login"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("GET %s: got CSP %q, want scripts from the origin only and no framing", path, csp)
		}
		if strings.Contains(string(body), " style=") || strings.Contains(string(body), "<script>") {
			t.Fatalf("GET %s: the page has inline style or script, which the CSP refuses", path)
		}
	}
}

func TestCrossOriginStateChangesRefused(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, path := range []string{"/console/login", "/console/logout", "/console/api/tasks"} {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://elsewhere.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("cross-origin POST %s: got %d %s, want a 403 problem", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	var tasks struct {
		Total int `json:"total"`
	}
	resp, err := http.Get(srv.URL + "/api/v1/operations/tasks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := jsonDecode(resp.Body, &tasks); err != nil || tasks.Total != 0 {
		t.Fatalf("tasks after refused POSTs: got %d (%v), want 0", tasks.Total, err)
	}
}

func TestLogInKeepsTheConsoleInside(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, c := range []struct{ next, want string }{
		{"/console/queues", "/console/queues"},
		{"https://elsewhere.example/", "/console/tasks"},
		{"//elsewhere.example/console/", "/console/tasks"},
		{"/api/v1/operations/tasks", "/console/tasks"},
	} {
		// Without authentication any key passes the API's check.
		resp, err := noRedirect.PostForm(srv.URL+"/console/login", url.Values{"key": {"k"}, "next": {c.next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != c.want {
			t.Fatalf("log-in with next=%q: got %d to %q, want 303 to %q", c.next, resp.StatusCode, got, c.want)
		}
		ck := resp.Cookies()
		if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/console/" {
			t.Fatalf("log-in cookie: got %+v, want one HttpOnly, SameSite=Strict cookie on /console/", ck)
		}
	}
	resp, err := noRedirect.PostForm(srv.URL+"/console/login", url.Values{"key": {""}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("log-in without a key: got %d with cookies %v, want 401 and none", resp.StatusCode, resp.Cookies())
	}
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// TestTaskCountsAreCapped serves the task list from an API whose every
// count is capped, and checks the page asks for the cheapest list total
// (totalCap=1: it shows none) and counts of up to CountCap per status, and
// says "1,000+" for each.
func TestTaskCountsAreCapped(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		queries []url.Values
	)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"tasks":[],"total":1000,"totalCapped":true,"page":1,"pageSize":25,"nextCursor":null}`)
	})
	srv := httptest.NewServer(console.New(console.Config{API: api, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/console/tasks?taskType=export")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/tasks: got %d, want 200: %s", resp.StatusCode, body)
	}
	if n := strings.Count(string(body), ">1,000+</b>"); n != 6 {
		t.Errorf("counts shown as 1,000+: got %d, want 6 (one per status)", n)
	}
	var lists, counts int
	for _, q := range queries {
		switch {
		case q.Get("pageSize") == "1" && q.Get("totalCap") == strconv.Itoa(console.CountCap) && q.Get("taskType") == "export":
			counts++
		case q.Get("pageSize") == strconv.Itoa(console.PageSize) && q.Get("totalCap") == "1":
			lists++
		default:
			t.Errorf("API query %v: want a list (totalCap=1) or a count (pageSize=1, totalCap=%d)", q, console.CountCap)
		}
	}
	if lists != 1 || counts != 6 {
		t.Errorf("API calls: got %d lists and %d counts, want 1 and 6", lists, counts)
	}
}

// TestCredentialCookieOnHTTPS: behind an https public URL the log-in keeps
// its credential in a __Host- cookie (Secure, path /, no domain), which no
// sibling subdomain or plain-http page can set; a cookie of the plain name
// (planted: that is how one would log a person in as someone else) or two
// of the __Host- name are no log-in.
func TestCredentialCookieOnHTTPS(t *testing.T) {
	t.Parallel()
	var seen []string // the Authorization headers the API got
	var mu sync.Mutex
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"title":"Unauthorized","status":401}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"tasks":[],"total":0}`)
	})
	cons := console.New(console.Config{API: api, PublicURL: "https://ops.example.com"})
	req := httptest.NewRequest("POST", "/console/login", strings.NewReader(url.Values{"key": {"k1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	cons.ServeHTTP(rec, req)
	cks := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cks) != 1 || cks[0].Name != "__Host-commonops_console" || !cks[0].Secure || cks[0].Path != "/" || cks[0].Domain != "" {
		t.Fatalf("log-in: got %d with cookies %+v, want 303 and one Secure __Host-commonops_console cookie on /", rec.Code, cks)
	}
	for _, c := range []struct {
		name    string
		cookies []*http.Cookie
		want    string // the Authorization the API gets
	}{
		{"its own cookie", []*http.Cookie{cks[0]}, "Bearer k1"},
		{"a planted plain-name cookie", []*http.Cookie{{Name: "commonops_console", Value: "attacker"}}, ""},
		{"a planted cookie beside its own", []*http.Cookie{{Name: cks[0].Name, Value: "attacker"}, cks[0]}, ""},
	} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		req := httptest.NewRequest("GET", "/console/api/tasks", nil)
		for _, ck := range c.cookies {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
		cons.ServeHTTP(httptest.NewRecorder(), req)
		mu.Lock()
		got := seen
		mu.Unlock()
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%s: the API got Authorization %q, want %q", c.name, got, c.want)
		}
	}
}
