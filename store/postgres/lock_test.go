package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
)

// TestLogAppendDoesNotWaitForAnUpdate: UpdateTask holds the task from its
// read to its write (a round trip and the callback between), and a worker
// appends logs while it reports progress. The append holds the task FOR
// KEY SHARE (so it is not deleted meanwhile), which the update's FOR NO
// KEY UPDATE lets through; under FOR UPDATE the append waited for the
// update to commit.
func TestLogAppendDoesNotWaitForAnUpdate(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 4)
	ctx := context.Background()
	tk := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	locked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	updated := make(chan error, 1)
	go func() {
		_, err := s.UpdateTask(ctx, tk.TenantID, tk.ID, func(task *commonops.Task) (commonops.Change, error) {
			once.Do(func() { close(locked) })
			<-release
			task.Message = new("halfway")
			return commonops.Change{}, nil
		})
		updated <- err
	}()
	<-locked
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := s.AppendLogs(actx, tk.TenantID, tk.ID, nil, []commonops.LogEntry{{Level: commonops.LogInfo, Message: "row 1 read", CreatedAt: time.Now()}})
	cancel()
	close(release)
	if err != nil {
		t.Fatalf("append logs while an update holds the task: %v (it waited for the update's lock)", err)
	}
	if err := <-updated; err != nil {
		t.Fatalf("update: %v", err)
	}
	logs, _, err := s.ListLogs(ctx, commonops.LogFilter{TenantID: tk.TenantID, TaskID: tk.ID})
	if err != nil || len(logs) != 1 {
		t.Fatalf("logs: %d, err %v", len(logs), err)
	}
}

// TestClaimTakesATaskHeldForKeyShare: a log append holds a pending task
// FOR KEY SHARE (a task released back to pending while its old worker
// still writes its last lines); the claim, FOR NO KEY UPDATE SKIP LOCKED,
// still takes it, where FOR UPDATE skipped it as locked.
func TestClaimTakesATaskHeldForKeyShare(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 4)
	ctx := context.Background()
	tk := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM tasks WHERE id = $1 FOR KEY SHARE", tk.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimNext(ctx, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: time.Now(), Limit: 1})
	if err != nil || len(got) != 1 || got[0].ID != tk.ID {
		t.Fatalf("claim next while the task is held FOR KEY SHARE: %d tasks, err %v; want the task", len(got), err)
	}
}

// TestCreateRefusesANotifyingChange: the create statements write no webhook
// delivery (a create never notifies, and leaving the webhook tables out of
// them made a create a sixth cheaper for PostgreSQL), so a create whose
// change would notify is refused rather than silently not delivered.
func TestCreateRefusesANotifyingChange(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 2)
	ctx := context.Background()
	task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
	ch.Topic = commonops.TopicCompleted
	if _, err := s.CreateTask(ctx, task, ch, nil); err == nil {
		t.Fatal("a create with a notifying change was accepted")
	}
	if _, err := s.GetTask(ctx, "acme", task.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
		t.Fatalf("get the refused task: %v, want not found", err)
	}
}

// TestCreateOverTheSimpleProtocol: behind PgBouncer in transaction mode
// pgx runs with default_query_exec_mode=simple_protocol, where a parameter
// goes with the type its Go value maps to; the outbox payload must go as
// json (a []byte went as bytea, and every create failed). Batches, with
// keys and without, go there too.
func TestCreateOverTheSimpleProtocol(t *testing.T) {
	t.Parallel()
	url := testdb.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := postgres.Open(context.Background(), postgres.Config{URL: url + sep + "default_query_exec_mode=simple_protocol", Schema: newSchema(t), MaxConns: 2})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
	if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
		t.Fatalf("create over the simple protocol: %v", err)
	}
	// A batch without keys (COPY) goes too.
	var batch []store.NewTask
	for range 3 {
		tk, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
		batch = append(batch, store.NewTask{Task: tk, Change: ch})
	}
	if _, err := s.CreateTasks(ctx, batch); err != nil {
		t.Fatalf("batch create over the simple protocol: %v", err)
	}
	// With keys: one free, one taken by a create before.
	taken := &store.Idempotency{Key: "k1", RequestHash: "h", StatusCode: 201, Response: json.RawMessage(`{"n": 1}`)}
	first, fch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
	if _, err := s.CreateTask(ctx, first, fch, taken); err != nil {
		t.Fatalf("create with a key over the simple protocol: %v", err)
	}
	free, frch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
	again, ach := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
	priors, err := s.CreateTasks(ctx, []store.NewTask{
		{Task: free, Change: frch, Idem: &store.Idempotency{Key: "k2", RequestHash: "h", StatusCode: 201, Response: json.RawMessage(`{"n": 2}`)}},
		{Task: again, Change: ach, Idem: taken},
	})
	if err != nil {
		t.Fatalf("batch create with keys over the simple protocol: %v", err)
	}
	if priors[0] != nil || priors[1] == nil || priors[1].TaskID != first.ID {
		t.Fatalf("priors: got %+v, %+v, want nil and the record of %s", priors[0], priors[1], first.ID)
	}
	for _, tk := range []*commonops.Task{task, batch[0].Task, batch[2].Task, free} {
		var payload string
		if err := s.Pool().QueryRow(ctx, "SELECT payload::text FROM outbox WHERE task_id = $1", tk.ID).Scan(&payload); err != nil {
			t.Fatalf("outbox row: %v", err)
		}
		if want, _ := tk.AppendJSON(nil); payload != string(want) {
			t.Fatalf("outbox payload:\n got %s\nwant %s", payload, want)
		}
	}
}
