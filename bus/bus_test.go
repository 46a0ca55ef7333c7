package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bus"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/google/uuid"
)

var _ outbox.Publisher = (*bus.Bus)(nil)

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func message(t testing.TB, id int64, topic string) outbox.Message {
	t.Helper()
	task := &commonops.Task{ID: uuid.NewString(), TenantID: commonops.DefaultTenant, TaskType: "import", EntityType: "product", Status: commonops.StatusPending}
	payload, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	return outbox.Message{ID: id, TenantID: task.TenantID, TaskID: task.ID, Topic: topic, Payload: payload, CreatedAt: time.Now()}
}

// inbox collects what one subscriber receives.
type inbox struct {
	mu   sync.Mutex
	msgs []bus.Message
}

func (in *inbox) handle(ctx context.Context, m bus.Message) error {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	return nil
}

func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

func (in *inbox) ids() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var ids []string
	for _, m := range in.msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestBusDeliversByTopic(t *testing.T) {
	t.Parallel()
	b := bus.New()
	var created, all, cancelled inbox
	defer b.Subscribe([]string{commonops.TopicCreated}, created.handle)()
	defer b.Subscribe(nil, all.handle)()
	defer b.Subscribe([]string{commonops.TopicCancelled}, cancelled.handle)()

	msgs := []outbox.Message{
		message(t, 1, commonops.TopicCreated),
		message(t, 2, commonops.TopicCompleted),
		message(t, 3, commonops.TopicCreated),
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	msgs[2].TraceParent = tp
	n, err := b.Publish(context.Background(), msgs)
	if n != 3 || err != nil {
		t.Fatalf("Publish: got (%d, %v), want (3, nil)", n, err)
	}
	waitFor(t, "3 messages on the catch-all subscriber", 5*time.Second, func() bool { return all.len() == 3 })
	waitFor(t, "2 created messages", 5*time.Second, func() bool { return created.len() == 2 })

	if got, want := all.ids(), []string{"1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("catch-all ids: got %v, want %v", got, want)
	}
	if got, want := created.ids(), []string{"1", "3"}; !slices.Equal(got, want) {
		t.Errorf("created ids: got %v, want %v", got, want)
	}
	created.mu.Lock()
	if got, want := created.msgs[1].Task.ID, msgs[2].TaskID; got != want {
		t.Errorf("task id of message 3: got %s, want %s", got, want)
	}
	if got := created.msgs[1].TraceParent; got != tp {
		t.Errorf("traceparent of message 3: got %q, want %q", got, tp)
	}
	if created.msgs[0].Task == all.msgs[0].Task {
		t.Errorf("two subscribers share one *Task; want a copy each")
	}
	created.mu.Unlock()
	if got := cancelled.len(); got != 0 {
		t.Errorf("cancelled subscriber got %d messages, want 0", got)
	}
}

func TestBusSlowSubscriberNeverBlocksPublish(t *testing.T) {
	t.Parallel()
	const queue, sent = 4, 20
	b := bus.New(bus.WithQueueSize(queue))
	release := make(chan struct{})
	var slowMu sync.Mutex
	slowHandled := 0
	unsubSlow := b.Subscribe(nil, func(ctx context.Context, m bus.Message) error {
		<-release
		slowMu.Lock()
		slowHandled++
		slowMu.Unlock()
		return nil
	})
	defer unsubSlow()
	var fast inbox
	defer b.Subscribe(nil, fast.handle)()

	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range sent {
			b.Publish(context.Background(), []outbox.Message{message(t, int64(i+1), commonops.TopicCreated)})
			// Keep the fast subscriber's queue from filling up.
			for deadline := time.Now().Add(5 * time.Second); fast.len() < i+1 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	select {
	case <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked behind a slow subscriber")
	}
	close(release)
	dropped := int(b.Dropped())
	waitFor(t, "slow subscriber drains its queue", 5*time.Second, func() bool {
		slowMu.Lock()
		defer slowMu.Unlock()
		return slowHandled+dropped == sent
	})
	if dropped < sent-queue-1 {
		t.Errorf("dropped: got %d, want >= %d", dropped, sent-queue-1)
	}
	if got := fast.len(); got != sent {
		t.Errorf("fast subscriber: got %d messages, want %d", got, sent)
	}
}

func TestBusSkipsUndecodablePayload(t *testing.T) {
	t.Parallel()
	b := bus.New()
	var in inbox
	defer b.Subscribe(nil, in.handle)()
	bad := outbox.Message{ID: 1, Topic: commonops.TopicCreated, Payload: json.RawMessage(`"not a task"`)}
	n, err := b.Publish(context.Background(), []outbox.Message{bad, message(t, 2, commonops.TopicCreated)})
	if n != 2 || err != nil {
		t.Fatalf("Publish: got (%d, %v), want (2, nil): a poison row must not stall the outbox", n, err)
	}
	waitFor(t, "the good message", 5*time.Second, func() bool { return in.len() == 1 })
	if got := in.ids(); !slices.Equal(got, []string{"2"}) {
		t.Errorf("delivered: got %v, want [2]", got)
	}
}

func TestBusUnsubscribeCancelsAndStopsDelivery(t *testing.T) {
	t.Parallel()
	b := bus.New()
	started := make(chan struct{})
	var ctxErr error
	unsub := b.Subscribe(nil, func(ctx context.Context, m bus.Message) error {
		close(started)
		<-ctx.Done()
		ctxErr = ctx.Err()
		return ctx.Err()
	})
	b.Publish(context.Background(), []outbox.Message{message(t, 1, commonops.TopicCreated)})
	<-started
	unsub() // waits for the running handler
	if !errors.Is(ctxErr, context.Canceled) {
		t.Errorf("handler context after unsubscribe: got %v, want context.Canceled", ctxErr)
	}
	unsub() // idempotent
	n, err := b.Publish(context.Background(), []outbox.Message{message(t, 2, commonops.TopicCreated)})
	if n != 1 || err != nil {
		t.Fatalf("Publish with no subscribers: got (%d, %v), want (1, nil)", n, err)
	}
	if got := b.Dropped(); got != 0 {
		t.Errorf("dropped after unsubscribe: got %d, want 0 (no subscriber, nothing to drop)", got)
	}
}

// TestBusSubscribeConcurrent holds every handler call until n of them run
// at once: a concurrent subscriber gets n messages side by side (one call
// at a time would never get there), and unsubscribing waits for all n.
func TestBusSubscribeConcurrent(t *testing.T) {
	t.Parallel()
	const n = 4
	b := bus.New()
	var mu sync.Mutex
	running, ended := 0, 0
	all := make(chan struct{})
	unsub := b.SubscribeConcurrent(nil, n, func(ctx context.Context, m bus.Message) error {
		mu.Lock()
		if running++; running == n {
			close(all)
		}
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		ended++
		mu.Unlock()
		return nil
	})
	var msgs []outbox.Message
	for i := range 2 * n {
		msgs = append(msgs, message(t, int64(i+1), commonops.TopicCreated))
	}
	b.Publish(context.Background(), msgs)
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d handler calls ran at once, want %d", running, n)
	}
	unsub()
	mu.Lock()
	defer mu.Unlock()
	if running != n || ended != n {
		t.Errorf("after unsubscribe: %d calls started and %d ended, want %d and %d (no more start once it is cancelled)", running, ended, n, n)
	}
}

// TestRelayToBus runs the outbox relay into the bus over each store: every
// committed task reaches the subscriber once, with the outbox id as its id.
func TestRelayToBus(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		b := bus.New()
		var in inbox
		defer b.Subscribe([]string{commonops.TopicCreated}, in.handle)()
		relay := outbox.NewRelay(s, b, outbox.Config{})
		relay.Start(context.Background())
		defer relay.Stop()

		want := map[string]bool{}
		for range 30 {
			id := uuid.NewString()
			task, ch, err := commonops.NewTask(id, commonops.DefaultTenant, "bus-test",
				commonops.CreateInput{TaskType: "import", EntityType: "order"}, commonops.Limits{}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateTask(context.Background(), task, ch, nil); err != nil {
				t.Fatal(err)
			}
			want[id] = true
		}
		waitFor(t, "30 events on the bus", 10*time.Second, func() bool { return in.len() == 30 })
		relay.Stop()
		in.mu.Lock()
		defer in.mu.Unlock()
		seenIDs := map[string]bool{}
		for _, m := range in.msgs {
			if _, err := strconv.ParseInt(m.ID, 10, 64); err != nil {
				t.Errorf("message id %q is not an outbox id: %v", m.ID, err)
			}
			if seenIDs[m.ID] {
				t.Errorf("message %s delivered twice", m.ID)
			}
			seenIDs[m.ID] = true
			if !want[m.Task.ID] {
				t.Errorf("unexpected task %s", m.Task.ID)
			}
			delete(want, m.Task.ID)
			if m.Task.Status != commonops.StatusPending {
				t.Errorf("task %s status: got %s, want pending", m.Task.ID, m.Task.Status)
			}
		}
		if len(want) != 0 {
			t.Errorf("%d tasks never delivered", len(want))
		}
	})
}
