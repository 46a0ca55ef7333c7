package storetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
)

// createN stores n runnable tasks of tenant A and returns their ids, one
// outbox row each.
func createN(t *testing.T, s store.Store, n int) []string {
	var out []string
	for i := range n {
		out = append(out, create(t, s, tenantA, at(i), commonops.CreateInput{}).ID)
	}
	return out
}

func msgTaskIDs(msgs []outbox.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.TaskID)
	}
	return out
}

var outboxTests = []test{
	{"DeliversInIDOrder", func(t *testing.T, s store.Store) {
		want := createN(t, s, 5)
		var got []outbox.Message
		n, err := s.DeliverOutbox(context.Background(), 10, func(_ context.Context, msgs []outbox.Message) (int, error) {
			got = msgs
			return len(msgs), nil
		})
		if err != nil || n != 5 {
			t.Fatalf("DeliverOutbox: got %d, err %v; want 5", n, err)
		}
		if g := msgTaskIDs(got); !slices.Equal(g, want) {
			t.Fatalf("published tasks: got %v, want %v", g, want)
		}
		for i, m := range got {
			if i > 0 && m.ID <= got[i-1].ID {
				t.Fatalf("outbox ids: got %d after %d, want increasing", m.ID, got[i-1].ID)
			}
			if m.Topic != commonops.TopicCreated || m.TenantID != tenantA || m.Attempts != 0 || m.CreatedAt.IsZero() || len(m.Payload) == 0 {
				t.Fatalf("message %d: got %+v, want a created event of tenant A, 0 attempts, with payload and time", i, m)
			}
		}
		if got := backlog(t, s); got != 0 {
			t.Fatalf("backlog: got %d, want 0", got)
		}
		if again := drain(t, s); len(again) != 0 {
			t.Fatalf("second delivery: got %d messages, want 0", len(again))
		}
	}},
	{"LimitAndPartialSuccess", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		want := createN(t, s, 5)
		var handed []outbox.Message
		n, err := s.DeliverOutbox(ctx, 3, func(_ context.Context, msgs []outbox.Message) (int, error) {
			handed = msgs
			return 2, nil
		})
		if err != nil || n != 2 || len(handed) != 3 {
			t.Fatalf("DeliverOutbox: marked %d of %d handed, err %v; want 2 of 3", n, len(handed), err)
		}
		if got := backlog(t, s); got != 3 {
			t.Fatalf("backlog: got %d, want 3", got)
		}
		rest := drain(t, s)
		if g := msgTaskIDs(rest); !slices.Equal(g, want[2:]) {
			t.Fatalf("remaining: got %v, want %v", g, want[2:])
		}
		if rest[0].Attempts != 1 || rest[1].Attempts != 0 {
			t.Fatalf("attempts: got %d and %d, want 1 (handed, not sent) and 0", rest[0].Attempts, rest[1].Attempts)
		}
	}},
	{"PublishErrorLeavesAllUnsent", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		want := createN(t, s, 3)
		n, err := s.DeliverOutbox(ctx, 10, func(context.Context, []outbox.Message) (int, error) { return 0, errBoom })
		if err == nil || n != 0 {
			t.Fatalf("DeliverOutbox with a failing publish: got %d, err %v; want 0 and an error", n, err)
		}
		if got := backlog(t, s); got != 3 {
			t.Fatalf("backlog: got %d, want 3", got)
		}
		rest := drain(t, s)
		if g := msgTaskIDs(rest); !slices.Equal(g, want) {
			t.Fatalf("redelivered: got %v, want %v", g, want)
		}
		for _, m := range rest {
			if m.Attempts != 1 {
				t.Fatalf("attempts after one failed publish: got %d, want 1", m.Attempts)
			}
		}
	}},
	{"EmptyDeliversNothing", func(t *testing.T, s store.Store) {
		n, err := s.DeliverOutbox(context.Background(), 10, func(_ context.Context, msgs []outbox.Message) (int, error) {
			if len(msgs) > 0 {
				t.Errorf("publish: got %d messages from an empty outbox", len(msgs))
			}
			return len(msgs), nil
		})
		if err != nil || n != 0 {
			t.Fatalf("DeliverOutbox on an empty outbox: got %d, err %v; want 0", n, err)
		}
	}},
	{"ConcurrentDeliveriesNeverDuplicate", func(t *testing.T, s store.Store) {
		const rows, relays = 40, 4
		createN(t, s, rows)
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		for range relays {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n, err := s.DeliverOutbox(context.Background(), 3, func(_ context.Context, msgs []outbox.Message) (int, error) {
						mu.Lock()
						for _, m := range msgs {
							seen[m.ID]++
						}
						mu.Unlock()
						time.Sleep(time.Millisecond) // hold the rows while another relay looks
						return len(msgs), nil
					})
					if err != nil {
						t.Errorf("DeliverOutbox: %v", err)
						return
					}
					if n == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		if len(seen) != rows {
			t.Fatalf("published rows: got %d, want %d", len(seen), rows)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("row %d: published %d times, want once", id, n)
			}
		}
	}},
	{"Stats", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		n, oldest, err := s.OutboxStats(ctx)
		if err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("empty stats: got %d, %v, err %v; want 0 and zero time", n, oldest, err)
		}
		before := time.Now().Add(-time.Second)
		createN(t, s, 3)
		after := time.Now().Add(time.Second)
		n, oldest, err = s.OutboxStats(ctx)
		if err != nil || n != 3 {
			t.Fatalf("stats: got backlog %d, err %v; want 3", n, err)
		}
		if oldest.Before(before) || oldest.After(after) {
			t.Fatalf("oldest: got %v, want between %v and %v", oldest, before, after)
		}
		drain(t, s)
		if n, oldest, err = s.OutboxStats(ctx); err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("stats after delivery: got %d, %v, err %v; want 0 and zero time", n, oldest, err)
		}
	}},
	{"Prune", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		createN(t, s, 5)
		if _, err := s.DeliverOutbox(ctx, 3, func(_ context.Context, msgs []outbox.Message) (int, error) { return len(msgs), nil }); err != nil {
			t.Fatalf("DeliverOutbox: %v", err)
		}
		if n, err := s.PruneOutbox(ctx, time.Now().Add(-time.Hour), 10); err != nil || n != 0 {
			t.Fatalf("prune rows sent before an hour ago: got %d, err %v; want 0", n, err)
		}
		future := time.Now().Add(time.Hour)
		for _, want := range []int{2, 1, 0} {
			if n, err := s.PruneOutbox(ctx, future, 2); err != nil || n != want {
				t.Fatalf("prune: got %d, err %v; want %d", n, err, want)
			}
		}
		if got := backlog(t, s); got != 2 {
			t.Fatalf("unsent rows after prune: got %d, want 2", got)
		}
		if got := drain(t, s); len(got) != 2 {
			t.Fatalf("deliverable after prune: got %d, want 2", len(got))
		}
	}},
	{"SignalAfterCommit", func(t *testing.T, s store.Store) {
		sig := s.OutboxSignal()
		for drained := false; !drained; {
			select {
			case <-sig:
			default:
				drained = true
			}
		}
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		select {
		case <-sig:
		case <-time.After(10 * time.Second):
			t.Fatal("OutboxSignal: got no signal within 10s of a create that wrote an outbox row")
		}
		if got := backlog(t, s); got != 1 {
			t.Fatalf("backlog when signalled: got %d, want 1 (the signal follows the commit)", got)
		}
		cancel(t, s, tk, at(1))
		select {
		case <-sig:
		case <-time.After(10 * time.Second):
			t.Fatal("OutboxSignal: got no signal within 10s of a cancel")
		}
	}},
	{"CarriesTraceParent", func(t *testing.T, s store.Store) {
		const (
			tpCreate   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			tpComplete = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
		)
		traced := commonops.WithTraceParent(context.Background(), tpCreate)
		tk, ch := newTask(t, tenantA, at(0), commonops.CreateInput{})
		if _, err := s.CreateTask(traced, tk, ch, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		plain := create(t, s, tenantA, at(1), commonops.CreateInput{})
		claim(t, s, tk, at(2))
		_, err := s.UpdateTask(commonops.WithTraceParent(context.Background(), tpComplete), tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, at(3))
		})
		if err != nil {
			t.Fatalf("UpdateTask: %v", err)
		}
		cancel(t, s, plain, at(4))
		type row struct{ task, topic, tp string }
		var got []row
		for _, m := range drain(t, s) {
			got = append(got, row{m.TaskID, m.Topic, m.TraceParent})
		}
		want := []row{
			{tk.ID, commonops.TopicCreated, tpCreate},
			{plain.ID, commonops.TopicCreated, ""},
			{tk.ID, commonops.TopicCompleted, tpComplete},
			{plain.ID, commonops.TopicCancelled, ""},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("delivered (task, topic, traceparent): got %v, want %v", got, want)
		}
	}},
}
