package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/webhook"
)

const secret = "test-secret"

// loopback permits the test receivers, which listen on 127.0.0.1.
func loopback(t testing.TB) *webhook.Guard {
	g, err := webhook.NewGuard([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatalf("NewGuard: %v", err)
	}
	return g
}

// ended stores a task with callbackURL and cancels it at now: one pending
// delivery, committed with the cancel.
func ended(t testing.TB, s store.Store, tenant, callbackURL string, now time.Time) *commonops.Task {
	t.Helper()
	tk, ch, err := commonops.NewTask(uuid.NewString(), tenant, "u", commonops.CreateInput{TaskType: "import", EntityType: "product", CallbackURL: &callbackURL}, commonops.Limits{}, now)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	ctx := context.Background()
	if _, err := s.CreateTask(ctx, tk, ch, nil); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	tk, err = s.UpdateTask(ctx, tenant, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(now) })
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	return tk
}

// waitDeliveries polls the task's deliveries until done says they are
// where the test wants them, or fails after 20s.
func waitDeliveries(t *testing.T, s store.Store, tenant, id string, done func([]*commonops.Delivery) bool) []*commonops.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, err := s.ListDeliveries(context.Background(), tenant, id)
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		if done(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(ds)
			t.Fatalf("deliveries of %s: got %s, never what the test waits for", id, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func attempted(n int) func([]*commonops.Delivery) bool {
	return func(ds []*commonops.Delivery) bool { return len(ds) == 1 && len(ds[0].Attempts) >= n }
}

// received is what a receiver saw of one POST.
type received struct {
	header http.Header
	body   []byte
}

func receiver(t *testing.T, status int) (*httptest.Server, <-chan received) {
	got := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), b}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func start(t *testing.T, s store.Store, cfg webhook.Config) *webhook.Dispatcher {
	cfg.Secret = secret
	if cfg.Guard == nil {
		cfg.Guard = loopback(t)
	}
	cfg.PollInterval = 20 * time.Millisecond
	d := webhook.New(s, cfg)
	d.Start(context.Background())
	t.Cleanup(d.Stop)
	return d
}

// TestDeliversSignedCloudEvent: the receiver gets the task as a structured
// CloudEvent whose signature verifies with the tenant's key, and the
// delivery is recorded delivered after one attempt.
func TestDeliversSignedCloudEvent(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		srv, got := receiver(t, 204)
		tk := ended(t, s, "tenant-a", srv.URL+"/done", time.Now())
		start(t, s, webhook.Config{})
		var r received
		select {
		case r = <-got:
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery within 20s")
		}
		key := webhook.TenantKey(secret, "tenant-a")
		if !webhook.Verify(key, r.header.Get(webhook.HeaderTimestamp), r.header.Get(webhook.HeaderSignature), r.body, 5*time.Minute, time.Now()) {
			t.Fatalf("signature %q over timestamp %q: does not verify with the tenant's key", r.header.Get(webhook.HeaderSignature), r.header.Get(webhook.HeaderTimestamp))
		}
		if webhook.Verify(webhook.TenantKey(secret, "tenant-b"), r.header.Get(webhook.HeaderTimestamp), r.header.Get(webhook.HeaderSignature), r.body, 5*time.Minute, time.Now()) {
			t.Fatal("signature verifies with another tenant's key, want not")
		}
		if ct := r.header.Get("Content-Type"); ct != "application/cloudevents+json" {
			t.Fatalf("Content-Type: got %q, want application/cloudevents+json", ct)
		}
		var ev struct {
			SpecVersion, ID, Source, Type, Subject string
			Data                                   commonops.Task
		}
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatalf("body: %v", err)
		}
		if ev.SpecVersion != "1.0" || ev.Type != commonops.TopicCancelled || ev.Subject != tk.ID || ev.Source != webhook.Source ||
			ev.ID != r.header.Get(webhook.HeaderID) || ev.Data.ID != tk.ID || ev.Data.Status != commonops.StatusCancelled {
			t.Fatalf("event: got %+v, want a cancelled CloudEvent of task %s with id = Webhook-Id %s", ev, tk.ID, r.header.Get(webhook.HeaderID))
		}
		ds := waitDeliveries(t, s, "tenant-a", tk.ID, func(ds []*commonops.Delivery) bool {
			return len(ds) == 1 && ds[0].Status == commonops.DeliveryDelivered
		})
		if a := ds[0].Attempts; len(a) != 1 || !a[0].OK || a[0].StatusCode == nil || *a[0].StatusCode != 204 || a[0].Error != nil {
			t.Fatalf("attempts: got %+v, want one OK attempt answered 204", a)
		}
	})
}

// TestDeliveredAfterRestart: deliveries committed while no dispatcher ran
// (the process died right after the commit), and one a dispatcher claimed
// and died before recording, are sent by the next dispatcher: the second
// once its lease ends.
func TestDeliveredAfterRestart(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		srv, got := receiver(t, 200)
		now := time.Now()
		first := ended(t, s, "tenant-a", srv.URL+"/first", now)
		second := ended(t, s, "tenant-a", srv.URL+"/second", now)
		// A dispatcher that claimed the second and died mid-POST.
		claimed, err := s.ClaimDeliveries(context.Background(), now, time.Minute, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("ClaimDeliveries: got %d, %v; want 1", len(claimed), err)
		}
		var mu sync.Mutex
		clock := now
		start(t, s, webhook.Config{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
		<-got // the one not claimed
		mu.Lock()
		clock = now.Add(2 * time.Minute) // past the dead dispatcher's lease
		mu.Unlock()
		<-got
		for _, tk := range []*commonops.Task{first, second} {
			waitDeliveries(t, s, "tenant-a", tk.ID, func(ds []*commonops.Delivery) bool {
				return len(ds) == 1 && ds[0].Status == commonops.DeliveryDelivered && ds[0].AttemptCount == 1
			})
		}
	})
}

// TestFailedAttemptsAreRecorded: an endpoint that answers 500, one that
// hangs past the timeout, one that redirects (never followed) and one at
// an address the guard refuses each leave a failed attempt saying why,
// and the delivery pending for a retry 5s later.
func TestFailedAttemptsAreRecorded(t *testing.T) {
	t.Parallel()
	hits := 0
	var mu sync.Mutex
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mu.Lock(); hits++; mu.Unlock() }))
	t.Cleanup(target.Close)
	hang := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL+"/in", http.StatusFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		now := time.Now().UTC().Truncate(time.Second)
		start(t, s, webhook.Config{Timeout: 300 * time.Millisecond, Now: func() time.Time { return now }})
		for _, tc := range []struct{ url, want string }{
			{srv.URL + "/500", "the endpoint answered 500"},
			{srv.URL + "/hang", "no answer within 300ms"},
			{srv.URL + "/redirect", "the endpoint answered 302; redirects are not followed"},
			{strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/500", ""},
		} {
			tk := ended(t, s, "tenant-a", tc.url, now)
			ds := waitDeliveries(t, s, "tenant-a", tk.ID, attempted(1))
			d, a := ds[0], ds[0].Attempts[0]
			if a.OK || a.Error == nil || tc.want != "" && !strings.HasPrefix(*a.Error, tc.want) {
				t.Fatalf("%s: attempt %+v, want a failure saying %q", tc.url, a, tc.want)
			}
			if d.Status != commonops.DeliveryPending || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now.Add(webhook.RetryFirst)) {
				t.Fatalf("%s: delivery %s next %v, want pending until %s", tc.url, d.Status, d.NextAttemptAt, now.Add(webhook.RetryFirst))
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if hits != 0 {
			t.Fatalf("redirect target: got %d requests, want 0 (redirects are not followed)", hits)
		}
	})
}

// TestRefusedAtDial: a delivery whose URL reaches an internal address at
// dial time (a name that now resolves to loopback) is not sent, and the
// attempt says why.
func TestRefusedAtDial(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, 200)
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		tk := ended(t, s, "tenant-a", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/x", time.Now())
		start(t, s, webhook.Config{Guard: &webhook.Guard{}})
		ds := waitDeliveries(t, s, "tenant-a", tk.ID, attempted(1))
		a := ds[0].Attempts[0]
		if a.OK || a.StatusCode != nil || a.Error == nil || !strings.Contains(*a.Error, "loopback") {
			t.Fatalf("attempt: got %+v, want not sent, naming the loopback address", a)
		}
		select {
		case r := <-got:
			t.Fatalf("the receiver got %s, want nothing", r.body)
		default:
		}
	})
}

// TestGivesUpAfter24Hours: a failure whose next attempt would fall past
// 24h after the terminal status fails the delivery for good.
func TestGivesUpAfter24Hours(t *testing.T) {
	t.Parallel()
	srv, _ := receiver(t, 503)
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		created := time.Now().UTC().Truncate(time.Second)
		tk := ended(t, s, "tenant-a", srv.URL, created)
		late := created.Add(webhook.GiveUpAfter - time.Second)
		start(t, s, webhook.Config{Now: func() time.Time { return late }})
		ds := waitDeliveries(t, s, "tenant-a", tk.ID, attempted(1))
		if d := ds[0]; d.Status != commonops.DeliveryFailed || d.NextAttemptAt != nil || *d.Attempts[0].StatusCode != 503 {
			t.Fatalf("delivery: got %s next %v attempts %+v, want failed for good after a 503", d.Status, d.NextAttemptAt, d.Attempts)
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]time.Duration{0: 5 * time.Second, 1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 10: 2560 * time.Second, 11: time.Hour, 60: time.Hour} {
		if got := webhook.Backoff(n); got != want {
			t.Fatalf("Backoff(%d): got %s, want %s", n, got, want)
		}
	}
}

// TestDispatchersShareDeliveries: two dispatchers on one database (two
// processes) send each of 40 deliveries once between them.
func TestDispatchersShareDeliveries(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		var mu sync.Mutex
		seen := map[string]int{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[r.Header.Get(webhook.HeaderID)]++
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}))
		t.Cleanup(srv.Close)
		now := time.Now()
		var ids []string
		for range 40 {
			ids = append(ids, ended(t, s, "tenant-a", srv.URL, now).ID)
		}
		start(t, s, webhook.Config{Concurrency: 4})
		start(t, s, webhook.Config{Concurrency: 4})
		for _, id := range ids {
			waitDeliveries(t, s, "tenant-a", id, func(ds []*commonops.Delivery) bool {
				return len(ds) == 1 && ds[0].Status == commonops.DeliveryDelivered
			})
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 40 {
			t.Fatalf("distinct deliveries received: got %d, want 40", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("delivery %s: received %d times, want once", id, n)
			}
		}
	})
}
