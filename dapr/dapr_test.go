package dapr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// app is the application side of a sidecar: the Subscriber behind a server
// that also records every CloudEvent Dapr posts, by id.
type app struct {
	h       *handler
	sidecar daprtest.Sidecar
	pub     *dapr.Publisher

	mu     sync.Mutex
	posts  map[string]int // CloudEvent id -> deliveries
	events []dapr.CloudEvent
}

func startApp(t *testing.T, opts ...daprtest.Option) *app {
	t.Helper()
	a := &app{h: newHandler(), posts: map[string]int{}}
	sub := dapr.NewSubscriber(dapr.SubscriberConfig{Handle: a.h.Handle})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/dapr/events/") {
			body, _ := io.ReadAll(r.Body)
			var ce dapr.CloudEvent
			_ = json.Unmarshal(body, &ce)
			a.mu.Lock()
			a.posts[ce.ID]++
			a.events = append(a.events, ce)
			a.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		sub.ServeHTTP(w, r)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	a.sidecar = daprtest.Start(t, l.Addr().(*net.TCPAddr).Port, opts...)
	a.pub = dapr.NewPublisher(dapr.PublisherConfig{BaseURL: a.sidecar.BaseURL})
	return a
}

func (a *app) deliveries(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.posts[id]
}

// waitAcked waits until the sidecar's Redis consumer group has no pending
// (delivered but unacknowledged) event on topic: Dapr is done with them.
func (a *app) waitAcked(t *testing.T, topic string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: a.sidecar.RedisDB})
	defer rdb.Close()
	waitFor(t, "events on "+topic+" acknowledged", 30*time.Second, func() bool {
		p, err := rdb.XPending(context.Background(), topic, a.sidecar.AppID).Result()
		return err == nil && p.Count == 0
	})
}

func taskMessage(t testing.TB, id int64, topic string) outbox.Message {
	t.Helper()
	task := &commonops.Task{ID: uuid.NewString(), TenantID: commonops.DefaultTenant, TaskType: "import", EntityType: "product", Status: commonops.StatusPending}
	payload, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	return outbox.Message{ID: id, TenantID: task.TenantID, TaskID: task.ID, Topic: topic, Payload: payload, CreatedAt: time.Now()}
}

func TestDaprRoundTrip(t *testing.T) {
	t.Parallel()
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			t.Parallel()
			testRoundTrip(t, bulk)
		})
	}
}

func testRoundTrip(t *testing.T, bulk bool) {
	a := startApp(t)
	a.pub = dapr.NewPublisher(dapr.PublisherConfig{BaseURL: a.sidecar.BaseURL, Bulk: bulk})
	if err := a.pub.Check(context.Background()); err != nil {
		t.Fatalf("Check on a running sidecar: %v", err)
	}
	msgs := []outbox.Message{
		taskMessage(t, 11, commonops.TopicCreated),
		taskMessage(t, 12, commonops.TopicCompleted), // not subscribed
		taskMessage(t, 13, commonops.TopicRetried),
		taskMessage(t, 14, commonops.TopicCancelled),
	}
	n, err := a.pub.Publish(context.Background(), msgs)
	if n != len(msgs) || err != nil {
		t.Fatalf("Publish: got (%d, %v), want (%d, nil)", n, err, len(msgs))
	}
	waitFor(t, "3 subscribed events handled", 30*time.Second, func() bool { return a.h.total() == 3 })
	for _, m := range []outbox.Message{msgs[0], msgs[2], msgs[3]} {
		if got := a.h.count(m.TaskID); got != 1 {
			t.Errorf("task %s handled %d times, want 1", m.TaskID, got)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ce := range a.events {
		id, _ := strconv.ParseInt(ce.ID, 10, 64)
		var want outbox.Message
		for _, m := range msgs {
			if m.ID == id {
				want = m
			}
		}
		if ce.SpecVersion != "1.0" || ce.Type != want.Topic || ce.Source != "commonops" || ce.Subject != want.TaskID ||
			ce.DataContentType != "application/json" || ce.Time == "" || ce.Topic != want.Topic {
			t.Errorf("event %s: got %+v, want specversion 1.0, type/topic %s, source commonops, subject %s, time set", ce.ID, ce, want.Topic, want.TaskID)
		}
		if want.Topic == commonops.TopicCompleted {
			t.Errorf("event %s on an unsubscribed topic was delivered", ce.ID)
		}
	}
}

func TestDaprMalformedEventDroppedNotRedelivered(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	// Published raw, as another service might: valid CloudEvent, data no task.
	bad := `{"specversion":"1.0","id":"bad-1","type":"operations.task.created","source":"elsewhere","datacontenttype":"application/json","data":{"hello":"world"}}`
	resp, err := http.Post(a.sidecar.BaseURL+"/v1.0/publish/pubsub/"+commonops.TopicCreated, "application/cloudevents+json", strings.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("raw publish: got %s, want 204", resp.Status)
	}
	good := taskMessage(t, 1, commonops.TopicCreated)
	if _, err := a.pub.Publish(context.Background(), []outbox.Message{good}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good event", 30*time.Second, func() bool { return a.h.count(good.TaskID) == 1 })
	waitFor(t, "the bad event", 30*time.Second, func() bool { return a.deliveries("bad-1") >= 1 })
	a.waitAcked(t, commonops.TopicCreated)
	if got := a.deliveries("bad-1"); got != 1 {
		t.Errorf("deliveries of the malformed event: got %d, want 1 (DROP must not be retried)", got)
	}
	if got := a.h.total(); got != 1 {
		t.Errorf("Handle calls: got %d, want 1 (the malformed event never reaches it)", got)
	}
}

func TestDaprDuplicateEventHandledOnce(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	m := taskMessage(t, 77, commonops.TopicCreated)
	for range 2 {
		if _, err := a.pub.Publish(context.Background(), []outbox.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both copies delivered", 30*time.Second, func() bool { return a.deliveries("77") == 2 })
	a.waitAcked(t, commonops.TopicCreated)
	if got := a.h.count(m.TaskID); got != 1 {
		t.Errorf("Handle calls for an event delivered twice: got %d, want 1", got)
	}
}

func TestDaprRetryIsRedelivered(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	failures := 2
	a.h.fail = func(string, *commonops.Task) error {
		if failures > 0 {
			failures--
			return commonops.Errorf(commonops.EUNAVAILABLE, "database down")
		}
		return nil
	}
	m := taskMessage(t, 5, commonops.TopicCreated)
	if _, err := a.pub.Publish(context.Background(), []outbox.Message{m}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "handled after two RETRY answers", 30*time.Second, func() bool { return a.h.count(m.TaskID) == 3 })
	a.waitAcked(t, commonops.TopicCreated)
	if got := a.deliveries("5"); got != 3 {
		t.Errorf("deliveries: got %d, want 3 (two RETRY, one SUCCESS)", got)
	}
}

// TestDaprOutageKeepsRowsAndDrainsOnce stops the sidecar under a running
// relay, commits tasks, and restarts it: nothing is lost, and each row is
// published (and delivered) exactly once.
func TestDaprOutageKeepsRowsAndDrainsOnce(t *testing.T) {
	t.Parallel()
	const tasks = 50
	for _, st := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}} {
		for _, bulk := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bulk=%v", st.name, bulk), func(t *testing.T) {
				t.Parallel()
				testOutage(t, st.open(t), tasks, bulk)
			})
		}
	}
}

func testOutage(t *testing.T, s store.Store, tasks int, bulk bool) {
	{
		a := startApp(t)
		a.pub = dapr.NewPublisher(dapr.PublisherConfig{BaseURL: a.sidecar.BaseURL, Bulk: bulk})
		reg := prometheus.NewRegistry()
		relay := outbox.NewRelay(s, a.pub, outbox.Config{BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Registerer: reg})
		relay.Start(context.Background())
		defer relay.Stop()

		a.sidecar.Stop()
		if err := a.pub.Check(context.Background()); err == nil {
			t.Fatal("Check with the sidecar down: got nil, want an error")
		}
		down := taskMessage(t, 999, commonops.TopicCreated)
		if n, err := a.pub.Publish(context.Background(), []outbox.Message{down}); n != 0 || err == nil {
			t.Fatalf("Publish with the sidecar down: got (%d, %v), want (0, error)", n, err)
		}

		ids := map[string]bool{}
		for range tasks {
			id := uuid.NewString()
			task, ch, err := commonops.NewTask(id, commonops.DefaultTenant, "dapr-test",
				commonops.CreateInput{TaskType: "import", EntityType: "product"}, commonops.Limits{}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateTask(context.Background(), task, ch, nil); err != nil {
				t.Fatal(err)
			}
			ids[id] = true
		}
		waitFor(t, "relay publish errors", 10*time.Second, func() bool { return counter(reg, "commonops_outbox_publish_errors_total") >= 2 })
		if backlog, _, err := s.OutboxStats(context.Background()); err != nil || backlog != tasks {
			t.Fatalf("backlog with the sidecar down: got (%d, %v), want %d", backlog, err, tasks)
		}

		a.sidecar.Restart()
		waitFor(t, "outbox drained", 30*time.Second, func() bool {
			backlog, _, err := s.OutboxStats(context.Background())
			return err == nil && backlog == 0
		})
		waitFor(t, fmt.Sprintf("%d tasks handled", tasks), 30*time.Second, func() bool { return a.h.total() == tasks })
		a.waitAcked(t, commonops.TopicCreated)
		a.mu.Lock()
		defer a.mu.Unlock()
		if got := len(a.posts); got != tasks {
			t.Errorf("distinct events delivered: got %d, want %d", got, tasks)
		}
		for id, n := range a.posts {
			if n != 1 {
				t.Errorf("event %s delivered %d times, want 1", id, n)
			}
		}
		for _, ce := range a.events {
			if !ids[ce.Subject] {
				t.Errorf("event %s for unknown task %s", ce.ID, ce.Subject)
			}
		}
	}
}

func counter(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestDaprInMemoryRoundTrip checks the pubsub.in-memory sidecar that the
// throughput benchmark uses.
func TestDaprInMemoryRoundTrip(t *testing.T) {
	t.Parallel()
	a := startApp(t, daprtest.InMemory())
	if a.sidecar.RedisDB != 0 {
		t.Errorf("in-memory sidecar leased redis db %d, want none", a.sidecar.RedisDB)
	}
	m := taskMessage(t, 3, commonops.TopicCreated)
	if n, err := a.pub.Publish(context.Background(), []outbox.Message{m}); n != 1 || err != nil {
		t.Fatalf("Publish: got (%d, %v), want (1, nil)", n, err)
	}
	waitFor(t, "the event handled", 30*time.Second, func() bool { return a.h.count(m.TaskID) == 1 })
}
