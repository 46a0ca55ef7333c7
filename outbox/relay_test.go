package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// waitFor polls cond until it holds or the deadline passes.
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

// createTasks commits n runnable tasks, each writing one outbox row on
// operations.task.created, and returns their ids in creation order.
func createTasks(t testing.TB, s store.Store, n int) []string {
	t.Helper()
	ids, err := commitTasks(s, n)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func commitTasks(s store.Store, n int) ([]string, error) {
	ids := make([]string, 0, n)
	for range n {
		id := uuid.NewString()
		task, ch, err := commonops.NewTask(id, commonops.DefaultTenant, "relay-test",
			commonops.CreateInput{TaskType: "import", EntityType: "product"}, commonops.Limits{}, time.Now())
		if err != nil {
			return ids, fmt.Errorf("new task: %w", err)
		}
		if ch.Topic != commonops.TopicCreated {
			return ids, fmt.Errorf("creation topic: got %q, want %q", ch.Topic, commonops.TopicCreated)
		}
		if _, err := s.CreateTask(context.Background(), task, ch, nil); err != nil {
			return ids, fmt.Errorf("create task: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func backlog(t testing.TB, s store.Store) int {
	t.Helper()
	n, _, err := s.OutboxStats(context.Background())
	if err != nil {
		t.Fatalf("outbox stats: %v", err)
	}
	return n
}

// recorder is a Publisher that records what it publishes and can be told
// to fail.
type recorder struct {
	mu      sync.Mutex
	calls   int
	fail    error // returned with n=0 while set
	prefix  int   // when > 0, accept at most this many per call and fail the rest
	msgs    []outbox.Message
	counts  map[int64]int
	arrived chan struct{}
}

func newRecorder() *recorder {
	return &recorder{counts: map[int64]int{}, arrived: make(chan struct{}, 1)}
}

func (r *recorder) Publish(ctx context.Context, msgs []outbox.Message) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		return 0, r.fail
	}
	n := len(msgs)
	var err error
	if r.prefix > 0 && n > r.prefix {
		n, err = r.prefix, errors.New("partial batch")
	}
	for _, m := range msgs[:n] {
		r.msgs = append(r.msgs, m)
		r.counts[m.ID]++
	}
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	return n, err
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

func (r *recorder) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// checkOnce asserts that exactly want distinct rows were published, each once,
// and that they name the given tasks.
func (r *recorder) checkOnce(t *testing.T, taskIDs []string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if got, want := len(r.counts), len(taskIDs); got != want {
		t.Fatalf("distinct rows published: got %d, want %d", got, want)
	}
	for id, n := range r.counts {
		if n != 1 {
			t.Errorf("row %d published %d times, want 1", id, n)
		}
	}
	seen := map[string]bool{}
	for _, m := range r.msgs {
		var task commonops.Task
		if err := json.Unmarshal(m.Payload, &task); err != nil {
			t.Fatalf("row %d payload: %v", m.ID, err)
		}
		if task.ID != m.TaskID {
			t.Errorf("row %d: payload task id %q, want %q", m.ID, task.ID, m.TaskID)
		}
		if m.Topic != commonops.TopicCreated {
			t.Errorf("row %d: topic %q, want %q", m.ID, m.Topic, commonops.TopicCreated)
		}
		seen[m.TaskID] = true
	}
	for _, id := range taskIDs {
		if !seen[id] {
			t.Errorf("task %s: no event published", id)
		}
	}
}

func TestRelayPublishesCommittedRowsOnceInOrder(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		ids := createTasks(t, s, 25)
		rec := newRecorder()
		relay := outbox.NewRelay(s, rec, outbox.Config{BatchSize: 10})
		relay.Start(context.Background())
		waitFor(t, "25 rows published", 10*time.Second, func() bool { return rec.distinct() == 25 })
		relay.Stop()

		rec.checkOnce(t, ids)
		if !slices.IsSortedFunc(rec.msgs, func(a, b outbox.Message) int { return int(a.ID - b.ID) }) {
			t.Errorf("rows published out of order")
		}
		if got := backlog(t, s); got != 0 {
			t.Errorf("backlog after drain: got %d, want 0", got)
		}
	})
}

func TestRelayKeepsRowsWhilePublisherFails(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		rec := newRecorder()
		rec.setFail(errors.New("pub/sub down"))
		reg := prometheus.NewRegistry()
		relay := outbox.NewRelay(s, rec, outbox.Config{
			BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
			StatsInterval: 10 * time.Millisecond, Registerer: reg,
		})
		relay.Start(context.Background())
		defer relay.Stop()
		ids := createTasks(t, s, 5)

		waitFor(t, "3 failed publish attempts", 10*time.Second, func() bool { return rec.callCount() >= 3 })
		if got := backlog(t, s); got != 5 {
			t.Fatalf("backlog while failing: got %d, want 5", got)
		}
		waitFor(t, "backlog gauge at 5", 10*time.Second, func() bool { return gauge(t, reg, "commonops_outbox_backlog") == 5 })
		if got := gauge(t, reg, "commonops_outbox_publish_errors_total"); got < 3 {
			t.Errorf("publish errors metric: got %v, want >= 3", got)
		}
		if got := gauge(t, reg, "commonops_outbox_oldest_age_seconds"); got <= 0 {
			t.Errorf("oldest age metric while rows wait: got %v, want > 0", got)
		}

		rec.setFail(nil)
		waitFor(t, "5 rows published after recovery", 10*time.Second, func() bool { return rec.distinct() == 5 })
		relay.Stop()
		rec.checkOnce(t, ids)
		if got := backlog(t, s); got != 0 {
			t.Errorf("backlog after recovery: got %d, want 0", got)
		}
		if got := gauge(t, reg, "commonops_outbox_published_total"); got != 5 {
			t.Errorf("published metric: got %v, want 5", got)
		}
	})
}

func TestRelayMarksOnlyThePublishedPrefix(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		ids := createTasks(t, s, 12)
		rec := newRecorder()
		rec.prefix = 5 // every batch of 10 is only half accepted
		relay := outbox.NewRelay(s, rec, outbox.Config{BatchSize: 10, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond})
		relay.Start(context.Background())
		waitFor(t, "12 rows published", 10*time.Second, func() bool { return rec.distinct() == 12 })
		relay.Stop()
		rec.checkOnce(t, ids)
	})
}

func TestTwoRelaysPublishEachRowOnce(t *testing.T) {
	t.Parallel()
	const rows = 2000
	testdb.Each(t, func(t *testing.T, s store.Store) {
		rec := newRecorder()
		var perRelay [2]int
		var mu sync.Mutex
		relays := make([]*outbox.Relay, 2)
		for i := range relays {
			p := outbox.PublisherFunc(func(ctx context.Context, msgs []outbox.Message) (int, error) {
				mu.Lock()
				perRelay[i] += len(msgs)
				mu.Unlock()
				return rec.Publish(ctx, msgs)
			})
			relays[i] = outbox.NewRelay(s, p, outbox.Config{BatchSize: 50, PollInterval: 10 * time.Millisecond})
			relays[i].Start(context.Background())
		}
		// Rows are committed while both relays run.
		var ids []string
		var wg sync.WaitGroup
		var idMu sync.Mutex
		for range 4 {
			wg.Go(func() {
				got, err := commitTasks(s, rows/4)
				if err != nil {
					t.Error(err)
				}
				idMu.Lock()
				ids = append(ids, got...)
				idMu.Unlock()
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		waitFor(t, fmt.Sprintf("%d rows published", rows), 60*time.Second, func() bool { return rec.distinct() == rows })
		for _, r := range relays {
			r.Stop()
		}
		rec.checkOnce(t, ids)
		if got := backlog(t, s); got != 0 {
			t.Errorf("backlog: got %d, want 0", got)
		}
		t.Logf("rows per relay: %v", perRelay)
	})
}

func TestRelayWakesOnSignal(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		rec := newRecorder()
		// With an hour between polls, only the store's signal can wake the
		// relay before the test's deadline.
		relay := outbox.NewRelay(s, rec, outbox.Config{PollInterval: time.Hour})
		relay.Start(context.Background())
		defer relay.Stop()
		// The first round may be caught by the start-up drain; the later
		// rounds come after it and only a signal can wake the relay for them.
		for i := range 3 {
			ids := createTasks(t, s, 1)
			select {
			case <-rec.arrived:
			case <-time.After(10 * time.Second):
				t.Fatalf("event %d not published within 10s of commit (poll interval is 1h): signal ignored", i)
			}
			waitFor(t, "row recorded", time.Second, func() bool { return rec.distinct() == i+1 })
			rec.mu.Lock()
			last := rec.msgs[len(rec.msgs)-1].TaskID
			rec.mu.Unlock()
			if last != ids[0] {
				t.Errorf("published task: got %s, want %s", last, ids[0])
			}
		}
	})
}

// A sweeper (Config.MinAge) takes off only the rows that old, reports no
// error for the young ones it leaves, and leaves the queue alone while the
// oldest row is young.
func TestRelayWithMinAgePublishesOnlyOldRows(t *testing.T) {
	t.Parallel()
	// Long enough for the young rows to stay young through a Drain on a
	// busy machine.
	const minAge = 2 * time.Second
	testdb.Each(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		rec := newRecorder()
		relay := outbox.NewRelay(s, rec, outbox.Config{MinAge: minAge, BatchSize: 2})
		old := createTasks(t, s, 3)
		if n, err := relay.Drain(ctx); n != 0 || err != nil {
			t.Fatalf("Drain with every row young: got %d, %v; want 0, nil", n, err)
		}
		written := time.Now()
		waitFor(t, "the rows to age", 2*minAge, func() bool { return time.Since(written) > minAge })
		young := createTasks(t, s, 2)
		if n, err := relay.Drain(ctx); n != 3 || err != nil {
			t.Fatalf("Drain: got %d, %v; want 3 old rows, nil", n, err)
		}
		rec.checkOnce(t, old)
		if got := backlog(t, s); got != len(young) {
			t.Errorf("backlog: got %d, want the %d young rows", got, len(young))
		}
		calls := rec.callCount()
		if n, err := relay.Drain(ctx); n != 0 || err != nil || rec.callCount() != calls {
			t.Errorf("Drain with only young rows left: got %d, %v and %d publish calls; want 0, nil and none", n, err, rec.callCount()-calls)
		}
	})
}

func TestRelayStopsPromptlyAndIsRestartable(t *testing.T) {
	t.Parallel()
	s := testdb.SQLite(t)
	rec := newRecorder()
	relay := outbox.NewRelay(s, rec, outbox.Config{PollInterval: time.Hour})
	relay.Start(context.Background())
	relay.Start(context.Background()) // a second Start is a no-op
	relay.Stop()
	relay.Stop() // and so is a second Stop

	ids := createTasks(t, s, 3)
	if got := backlog(t, s); got != 3 {
		t.Fatalf("backlog with relay stopped: got %d, want 3", got)
	}
	relay.Start(context.Background())
	waitFor(t, "3 rows published after restart", 10*time.Second, func() bool { return rec.distinct() == 3 })
	relay.Stop()
	rec.checkOnce(t, ids)
}

// gauge returns the value of the single series of a gauge or counter in reg.
func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
