package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// newBatch builds n tasks of tenant created at now, the odd ones scheduled
// an hour later (not runnable: an event but no outbox row).
func newBatch(t *testing.T, tenant string, n int) []store.NewTask {
	t.Helper()
	batch := make([]store.NewTask, n)
	for i := range batch {
		in := commonops.CreateInput{Params: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i))}
		if i%2 == 1 {
			in.ScheduledAt = ptr(at(3600))
		}
		tk, ch := newTask(t, tenant, at(0), in)
		batch[i] = store.NewTask{Task: tk, Change: ch}
	}
	return batch
}

func keyOf(tenant, key, hash string, tk *commonops.Task) *store.Idempotency {
	return &store.Idempotency{TenantID: tenant, Key: key, RequestHash: hash, TaskID: tk.ID, StatusCode: 201, Response: json.RawMessage(fmt.Sprintf(`{"id": %q}`, tk.ID)), CreatedAt: tk.CreatedAt}
}

func createTasks(t *testing.T, s store.Store, batch []store.NewTask) []*store.Idempotency {
	t.Helper()
	priors, err := s.CreateTasks(context.Background(), batch)
	if err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	if len(priors) != len(batch) {
		t.Fatalf("CreateTasks results: got %d, want %d", len(priors), len(batch))
	}
	return priors
}

var createBatchTests = []test{
	{"InsertsEveryTaskWithItsEventAndOutboxRow", func(t *testing.T, s store.Store) {
		batch := newBatch(t, tenantA, 7)
		for i, p := range createTasks(t, s, batch) {
			if p != nil {
				t.Fatalf("item %d: got prior %+v, want nil", i, p)
			}
		}
		var runnable []string
		for _, it := range batch {
			equalTask(t, "stored task", get(t, s, tenantA, it.Task.ID), it.Task)
			if got, want := events(t, s, tenantA, it.Task.ID), []string{commonops.EventCreated}; !slices.Equal(got, want) {
				t.Fatalf("events of %s: got %v, want %v", it.Task.ID, got, want)
			}
			if it.Change.Topic != "" {
				runnable = append(runnable, it.Task.ID)
			}
		}
		msgs := drain(t, s)
		if got := msgTaskIDs(msgs); !slices.Equal(got, runnable) {
			t.Fatalf("outbox rows: got tasks %v, want %v (the runnable ones, in batch order)", got, runnable)
		}
		for _, m := range msgs {
			var payload commonops.Task
			if err := json.Unmarshal(m.Payload, &payload); err != nil || payload.ID != m.TaskID || m.Topic != commonops.TopicCreated {
				t.Fatalf("outbox row of %s: got topic %q payload %s (%v), want %q and the task", m.TaskID, m.Topic, m.Payload, err, commonops.TopicCreated)
			}
		}
	}},
	{"KeepsEveryField", func(t *testing.T, s store.Store) {
		// Without keys the PostgreSQL store COPYs a batch: every column
		// must come back as written, NULLs and booleans both ways.
		var batch []store.NewTask
		for seed := 1; seed <= 4; seed++ {
			tk := filledTask(t, uuid.NewString(), tenantA, seed)
			batch = append(batch, store.NewTask{Task: tk, Change: commonops.Change{Event: commonops.EventCreated, Topic: commonops.TopicCreated}})
		}
		bare, ch := newTask(t, tenantA, at(0), commonops.CreateInput{})
		batch = append(batch, store.NewTask{Task: bare, Change: ch})
		want := make([]commonops.Task, len(batch))
		for i, it := range batch {
			want[i] = *it.Task
		}
		createTasks(t, s, batch)
		for i, it := range batch {
			equalFields(t, fmt.Sprintf("item %d", i), get(t, s, tenantA, it.Task.ID), &want[i])
		}
		if got, want := msgTaskIDs(drain(t, s)), []string{batch[0].Task.ID, batch[1].Task.ID, batch[2].Task.ID, batch[3].Task.ID, bare.ID}; !slices.Equal(got, want) {
			t.Fatalf("outbox rows: got %v, want %v", got, want)
		}
	}},
	{"EmptyBatch", func(t *testing.T, s store.Store) {
		if got := createTasks(t, s, nil); len(got) != 0 {
			t.Fatalf("results: got %d, want 0", len(got))
		}
	}},
	{"TakenKeyReturnsItsRecordAndInsertsTheRest", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		first, ch := newTask(t, tenantA, at(0), commonops.CreateInput{})
		if _, err := s.CreateTask(ctx, first, ch, keyOf(tenantA, "k1", "h1", first)); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		drain(t, s)
		batch := newBatch(t, tenantA, 3)
		batch[0].Idem = keyOf(tenantA, "k1", "h2", batch[0].Task) // taken
		batch[1].Idem = keyOf(tenantA, "k2", "h3", batch[1].Task) // free
		// The same key in tenant B is another key.
		other, och := newTask(t, tenantB, at(0), commonops.CreateInput{})
		batch = append(batch, store.NewTask{Task: other, Change: och, Idem: keyOf(tenantB, "k1", "h1", other)})
		priors := createTasks(t, s, batch)
		p := priors[0]
		if p == nil || p.TaskID != first.ID || p.RequestHash != "h1" || p.Key != "k1" || p.TenantID != tenantA || p.StatusCode != 201 || !p.CreatedAt.Equal(at(0)) {
			t.Fatalf("item 0: got prior %+v, want the record of task %s with hash h1", p, first.ID)
		}
		if want := keyOf(tenantA, "k1", "h1", first).Response; !jsonEqual(t, p.Response, want) {
			t.Fatalf("item 0 response: got %s, want %s", p.Response, want)
		}
		_, err := s.GetTask(ctx, tenantA, batch[0].Task.ID)
		wantCode(t, "GetTask of the replayed item", err, commonops.ENOTFOUND)
		for i := 1; i < len(batch); i++ {
			if priors[i] != nil {
				t.Fatalf("item %d: got prior %+v, want nil", i, priors[i])
			}
			equalTask(t, fmt.Sprintf("item %d", i), get(t, s, batch[i].Task.TenantID, batch[i].Task.ID), batch[i].Task)
		}
		// Item 1's key now replays item 1.
		again, ach := newTask(t, tenantA, at(5), commonops.CreateInput{})
		priors = createTasks(t, s, []store.NewTask{{Task: again, Change: ach, Idem: keyOf(tenantA, "k2", "h3", again)}})
		if priors[0] == nil || priors[0].TaskID != batch[1].Task.ID {
			t.Fatalf("replay of k2: got %+v, want task %s", priors[0], batch[1].Task.ID)
		}
		if got, want := msgTaskIDs(drain(t, s)), []string{batch[2].Task.ID, other.ID}; !slices.Equal(got, want) {
			t.Fatalf("outbox rows: got %v, want %v (no row for a replayed item)", got, want)
		}
	}},
	{"TakenIDInsertsNothing", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		drain(t, s)
		batch := newBatch(t, tenantA, 3)
		batch[2].Task.ID = tk.ID
		_, err := s.CreateTasks(context.Background(), batch)
		wantCode(t, "CreateTasks with a taken id", err, commonops.ECONFLICT)
		for _, it := range batch[:2] {
			_, err := s.GetTask(context.Background(), tenantA, it.Task.ID)
			wantCode(t, "GetTask of an item of the refused batch", err, commonops.ENOTFOUND)
		}
		if got := backlog(t, s); got != 0 {
			t.Fatalf("outbox backlog: got %d, want 0", got)
		}
	}},
	{"RepeatedKeyInsertsNothing", func(t *testing.T, s store.Store) {
		batch := newBatch(t, tenantA, 2)
		batch[0].Idem = keyOf(tenantA, "same", "h", batch[0].Task)
		batch[1].Idem = keyOf(tenantA, "same", "h", batch[1].Task)
		_, err := s.CreateTasks(context.Background(), batch)
		wantCode(t, "CreateTasks with a key given twice", err, commonops.EINVALID)
		if _, total, _ := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA}); total != 0 {
			t.Fatalf("tasks: got %d, want 0", total)
		}
	}},
	{"Large", func(t *testing.T, s store.Store) {
		batch := newBatch(t, tenantA, 400)
		for i := range batch {
			if i%3 == 0 {
				batch[i].Idem = keyOf(tenantA, fmt.Sprint("key-", i), "h", batch[i].Task)
			}
		}
		createTasks(t, s, batch)
		if _, total, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA}); err != nil || total != 400 {
			t.Fatalf("tasks: got %d (%v), want 400", total, err)
		}
		if got := backlog(t, s); got != 200 {
			t.Fatalf("outbox backlog: got %d, want 200", got)
		}
	}},
}
