package feed_test

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/feed"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
)

// slowPoll makes the fallback tick too slow to matter: what a test sees
// within a few seconds came through the commit signal.
const slowPoll = time.Hour

func start(t *testing.T, s feed.Source, cfg feed.Config) *feed.Feed {
	t.Helper()
	f := feed.New(s, cfg)
	f.Start(context.Background())
	t.Cleanup(f.Stop)
	return f
}

func subscribe(t *testing.T, f *feed.Feed, filter feed.Filter, buffer int) *feed.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := f.Subscribe(ctx, filter, buffer)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(sub.Close)
	return sub
}

func createTask(t *testing.T, s store.Store, tenant string) *commonops.Task {
	t.Helper()
	tk, ch, err := commonops.NewTask(uuid.NewString(), tenant, "u", commonops.CreateInput{TaskType: "import", EntityType: "product"}, commonops.Limits{}, time.Now())
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	if _, err := s.CreateTask(context.Background(), tk, ch, nil); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	return tk
}

func claimTask(t *testing.T, s store.Store, tk *commonops.Task) {
	t.Helper()
	if _, err := s.ClaimTask(context.Background(), tk.TenantID, tk.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: time.Now()}); err != nil {
		t.Fatalf("ClaimTask: %v", err)
	}
}

func cancelTask(t *testing.T, s store.Store, tk *commonops.Task) {
	t.Helper()
	if _, err := s.UpdateTask(context.Background(), tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(time.Now()) }); err != nil {
		t.Fatalf("cancel: %v", err)
	}
}

// next waits for the subscription's next event.
func next(t *testing.T, sub *feed.Subscription, within time.Duration) commonops.Event {
	t.Helper()
	select {
	case e := <-sub.Events():
		return *e
	case <-sub.Lost():
		t.Fatal("subscription lost, want an event")
	case <-time.After(within):
		t.Fatalf("got no event within %s, want one", within)
	}
	return commonops.Event{}
}

func none(t *testing.T, sub *feed.Subscription, within time.Duration) {
	t.Helper()
	select {
	case e := <-sub.Events():
		t.Fatalf("got event %d %s of %s, want none", e.ID, e.EventType, e.TaskID)
	case <-time.After(within):
	}
}

func TestFeedDeliversByTaskAndTenant(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		old := createTask(t, s, "acme") // before the feed: replayed by subscribers, not fed
		f := start(t, s, feed.Config{Poll: slowPoll})
		tenant := subscribe(t, f, feed.Filter{TenantID: "acme"}, 0)
		cancels := subscribe(t, f, feed.Filter{TenantID: "acme", Match: func(e commonops.Event) bool { return e.EventType == commonops.EventCancelled }}, 0)
		a := createTask(t, s, "acme")
		taskA := subscribe(t, f, feed.Filter{TenantID: "acme", TaskID: a.ID}, 0)
		b := createTask(t, s, "acme")
		c := createTask(t, s, "other")

		claimTask(t, s, a) // started: an event with no outbox row
		cancelTask(t, s, b)
		cancelTask(t, s, c)
		cancelTask(t, s, old)

		e := next(t, taskA, 5*time.Second)
		if e.EventType == commonops.EventCreated { // when the feed had not passed it at Subscribe
			e = next(t, taskA, 5*time.Second)
		}
		if e.TaskID != a.ID || e.EventType != commonops.EventStarted || e.ID <= taskA.From() {
			t.Errorf("task a: got %s %s (id %d, from %d), want its started event after From", e.TaskID, e.EventType, e.ID, taskA.From())
		}
		none(t, taskA, 200*time.Millisecond)
		var got []string
		for range 5 {
			e := next(t, tenant, 5*time.Second)
			got = append(got, e.TaskID+" "+e.EventType)
		}
		want := []string{a.ID + " created", b.ID + " created", a.ID + " started", b.ID + " cancelled", old.ID + " cancelled"}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("tenant event %d: got %s, want %s", i, got[i], want[i])
			}
		}
		none(t, tenant, 200*time.Millisecond) // not tenant other's
		for _, id := range []string{b.ID, old.ID} {
			if e := next(t, cancels, 5*time.Second); e.TaskID != id {
				t.Errorf("matched: got %s %s, want %s cancelled", e.TaskID, e.EventType, id)
			}
		}
		none(t, cancels, 200*time.Millisecond)
	})
}

func TestFeedCutsOffASlowSubscriber(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		f := start(t, s, feed.Config{Poll: slowPoll})
		slow := subscribe(t, f, feed.Filter{TenantID: "acme"}, 2)
		for range 3 {
			createTask(t, s, "acme")
		}
		select {
		case <-slow.Lost():
		case <-time.After(10 * time.Second):
			t.Fatal("a subscriber that read nothing of 3 events with a buffer of 2: not lost, want lost")
		}
		if n := f.Subscribers(); n != 0 {
			t.Errorf("subscribers after the cut: got %d, want 0", n)
		}
	})
}

func TestFeedStopLosesSubscriptions(t *testing.T) {
	s := testdb.SQLite(t)
	f := feed.New(s, feed.Config{})
	if _, err := f.Subscribe(context.Background(), feed.Filter{TenantID: "acme"}, 0); err != feed.ErrStopped {
		t.Fatalf("Subscribe before Start: got %v, want ErrStopped", err)
	}
	f.Start(context.Background())
	sub := subscribe(t, f, feed.Filter{TenantID: "acme"}, 0)
	f.Stop()
	select {
	case <-sub.Lost():
	default:
		t.Fatal("subscription after Stop: not lost, want lost")
	}
}

// TestFeedWaitsForAnIDCommittedLate opens a transaction that takes an
// event id and holds it, commits a later event, and checks the feed holds
// the later one back until the first commits, then delivers both in id
// order; and that an id whose insert rolls back is skipped after GapWait.
func TestFeedWaitsForAnIDCommittedLate(t *testing.T) {
	s := testdb.PostgresStore(t)
	ctx := context.Background()
	f := start(t, s, feed.Config{Poll: slowPoll, GapWait: 2 * time.Second})
	sub := subscribe(t, f, feed.Filter{TenantID: "acme"}, 0)
	a := createTask(t, s, "acme")
	if e := next(t, sub, 5*time.Second); e.TaskID != a.ID {
		t.Fatalf("got %s %s, want %s created", e.TaskID, e.EventType, a.ID)
	}

	late, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer late.Rollback(ctx)
	var lateID int64
	if err := late.QueryRow(ctx, `INSERT INTO task_events (tenant_id, task_id, event_type, event_data, created_at)
		VALUES ('acme', $1, 'progress', '{}', now()) RETURNING id`, a.ID).Scan(&lateID); err != nil {
		t.Fatalf("insert the late event: %v", err)
	}
	cancelTask(t, s, a) // id lateID+1, committed first
	none(t, sub, 300*time.Millisecond)
	if err := late.Commit(ctx); err != nil {
		t.Fatalf("commit the late event: %v", err)
	}
	if e := next(t, sub, 5*time.Second); e.ID != lateID {
		t.Errorf("first event: got id %d (%s), want the late one %d", e.ID, e.EventType, lateID)
	}
	if e := next(t, sub, 5*time.Second); e.ID != lateID+1 || e.EventType != commonops.EventCancelled {
		t.Errorf("second event: got id %d %s, want %d cancelled", e.ID, e.EventType, lateID+1)
	}

	rolled, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := rolled.Exec(ctx, `INSERT INTO task_events (tenant_id, task_id, event_type, event_data, created_at)
		VALUES ('acme', $1, 'progress', '{}', now())`, a.ID); err != nil {
		t.Fatalf("insert: %v", err)
	}
	b := createTask(t, s, "acme")
	if err := rolled.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	begin := time.Now()
	if e := next(t, sub, 5*time.Second); e.TaskID != b.ID {
		t.Errorf("after a rolled-back id: got %s %s, want %s created", e.TaskID, e.EventType, b.ID)
	}
	if waited := time.Since(begin); waited > 5*time.Second {
		t.Errorf("held back %s after a rolled-back id, want about GapWait (2s)", waited)
	}
}

// gated is a Source without a commit signal whose reads find nothing new
// until open: what the reader then finds comes in one read.
type gated struct {
	src  feed.Source
	open atomic.Bool
}

func (g *gated) ListEventsAfter(ctx context.Context, afterID int64, limit int) ([]commonops.Event, int64, error) {
	if afterID != math.MaxInt64 && !g.open.Load() { // the newest id (start) is always read
		return nil, afterID, nil
	}
	return g.src.ListEventsAfter(ctx, afterID, limit)
}

// TestFeedKeepsASubscriberThroughABatch writes 300 events the reader then
// takes in one read and delivers at once, and checks a subscriber with the
// default buffer keeps them all: a busy queue's reader delivers such
// batches (after a gap or a slow read) to subscribers that keep up.
func TestFeedKeepsASubscriberThroughABatch(t *testing.T) {
	s := testdb.SQLite(t)
	src := &gated{src: s}
	f := start(t, src, feed.Config{Poll: 20 * time.Millisecond})
	const n = 300
	var matched atomic.Int64
	all := make(chan struct{})
	sub := subscribe(t, f, feed.Filter{TenantID: "acme", Match: func(commonops.Event) bool {
		if matched.Add(1) == n {
			close(all)
		}
		return true
	}}, 0)
	for range n {
		createTask(t, s, "acme")
	}
	src.open.Store(true)
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatalf("the feed matched %d events within 10s, want %d (a subscriber cut off is matched no more)", matched.Load(), n)
	}
	f.Subscribers() // waits for the delivery in progress (it holds the feed's lock)
	select {
	case <-sub.Lost():
		t.Fatalf("a subscriber with the default buffer (%d), sent %d events at once: lost, want kept", feed.BufferDefault, n)
	default:
	}
	if got := len(sub.Events()); got != n {
		t.Errorf("events buffered: got %d, want %d", got, n)
	}
}
