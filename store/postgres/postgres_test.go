package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
)

// newSchema returns a fresh schema name, dropped when the test ends, for
// tests that open several stores (replicas) on one schema.
func newSchema(t testing.TB) string {
	t.Helper()
	url := testdb.PostgresURL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "test_pg_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// openStore opens a migrated store in a schema of its own.
func openStore(t testing.TB) *postgres.Store {
	t.Helper()
	return testdb.PostgresStore(t)
}

func openIn(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	return openWith(t, schema, 8)
}

// openWith opens a store in schema with a pool of maxConns (0: the default).
func openWith(t testing.TB, schema string, maxConns int32) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testdb.PostgresURL(t), Schema: schema, MaxConns: maxConns})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTask(t testing.TB, tenant string, in commonops.CreateInput) (*commonops.Task, commonops.Change) {
	t.Helper()
	task, ch, err := commonops.NewTask(uuid.NewString(), tenant, "tester", in, commonops.Limits{}, time.Now())
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	return task, ch
}

func create(t testing.TB, s store.Store, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	task, ch := newTask(t, "acme", in)
	if _, err := s.CreateTask(context.Background(), task, ch, nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	return task
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	name, size, prio := "in.csv", int64(12), 3
	task := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product", Params: json.RawMessage(`{"b": 1, "a": [1, 2]}`), FileName: &name, FileSize: &size, Priority: &prio})

	got, err := s.GetTask(ctx, "acme", task.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !reflect.DeepEqual(got, task) {
		t.Errorf("got %+v, want %+v", got, task)
	}
	if _, err := s.GetTask(ctx, "other", task.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
		t.Errorf("other tenant: got %v, want %s", err, commonops.ENOTFOUND)
	}

	updated, err := s.UpdateTask(ctx, "acme", task.ID, func(t *commonops.Task) (commonops.Change, error) { return t.ConfirmUpload(time.Now()) })
	if err != nil {
		t.Fatalf("confirm upload: %v", err)
	}
	again, err := s.GetTask(ctx, "acme", task.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !reflect.DeepEqual(again, updated) {
		t.Errorf("after update got %+v, want %+v", again, updated)
	}
	if again.Version != 2 || again.UploadStatus != commonops.UploadUploaded {
		t.Errorf("got version %d upload %s, want 2 uploaded", again.Version, again.UploadStatus)
	}
	events, err := s.ListEvents(ctx, "acme", task.ID, 0, 0)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	if len(events) != 2 || events[0].EventType != commonops.EventCreated || events[1].EventType != commonops.EventUploadConfirmed {
		t.Errorf("got events %+v, want created then upload_confirmed", events)
	}
}

func TestCreateIdempotentUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	priors := make([]*store.Idempotency, n)
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "export", EntityType: "order"})
			ids[i] = task.ID
			idem := &store.Idempotency{TenantID: "acme", Key: "k1", RequestHash: "h", TaskID: task.ID, StatusCode: 201, Response: json.RawMessage(`{"task":{"id":"` + task.ID + `"}}`), CreatedAt: task.CreatedAt}
			priors[i], errs[i] = s.CreateTask(ctx, task, ch, idem)
		})
	}
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if priors[i] == nil {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("got %d creates that inserted, want 1", winners)
	}
	_, total, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: "acme"})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if total != 1 {
		t.Errorf("got %d tasks, want 1", total)
	}
	for i := range n {
		if priors[i] != nil && (priors[i].RequestHash != "h" || priors[i].StatusCode != 201 || len(priors[i].Response) == 0) {
			t.Errorf("replay %d: got %+v, want the stored key", i, priors[i])
		}
	}
}

// TestBatchKeysUnderConcurrency: batches racing on the same keys, each in
// its own order, create one task a key; every other item answers with the
// record of the task that won its key.
func TestBatchKeysUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	const batches, keys = 4, 300
	var wg sync.WaitGroup
	items := make([][]store.NewTask, batches)
	priors := make([][]*store.Idempotency, batches)
	errs := make([]error, batches)
	start := make(chan struct{})
	for b := range batches {
		for _, k := range mrand.Perm(keys) {
			task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "export", EntityType: "order"})
			idem := &store.Idempotency{TenantID: "acme", Key: fmt.Sprint("k", k), RequestHash: "h", StatusCode: 201, Response: json.RawMessage(`{}`), CreatedAt: task.CreatedAt}
			items[b] = append(items[b], store.NewTask{Task: task, Change: ch, Idem: idem})
		}
		wg.Go(func() {
			<-start
			priors[b], errs[b] = s.CreateTasks(ctx, items[b])
		})
	}
	close(start)
	wg.Wait()
	winner := map[string]string{} // key → task
	for b := range batches {
		if errs[b] != nil {
			t.Fatalf("batch %d: %v", b, errs[b])
		}
		for n, it := range items[b] {
			if priors[b][n] == nil {
				if w, ok := winner[it.Idem.Key]; ok {
					t.Fatalf("key %s: tasks %s and %s both created", it.Idem.Key, w, it.Task.ID)
				}
				winner[it.Idem.Key] = it.Task.ID
			}
		}
	}
	if len(winner) != keys {
		t.Fatalf("got %d keys with a created task, want %d", len(winner), keys)
	}
	for b := range batches {
		for n, it := range items[b] {
			if p := priors[b][n]; p != nil && p.TaskID != winner[it.Idem.Key] {
				t.Errorf("batch %d, key %s: replayed task %s, want %s", b, it.Idem.Key, p.TaskID, winner[it.Idem.Key])
			}
		}
	}
	if _, total, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: "acme"}); err != nil || total != keys {
		t.Errorf("tasks: got %d (%v), want %d", total, err, keys)
	}
	if backlog, _, err := s.OutboxStats(ctx); err != nil || backlog != keys {
		t.Errorf("outbox backlog: got %d (%v), want %d", backlog, err, keys)
	}
}

// TestBatchAfterAColumnChanged: pgx keeps the column types of a COPY's
// table per connection; after a migration elsewhere changed one, the next
// batch reads them again instead of failing on every connection that had
// them.
func TestBatchAfterAColumnChanged(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s := openWith(t, schema, 1)
	ctx := context.Background()
	batch := func() error {
		var b []store.NewTask
		for range 3 {
			tk, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
			b = append(b, store.NewTask{Task: tk, Change: ch})
		}
		_, err := s.CreateTasks(ctx, b)
		return err
	}
	if err := batch(); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if _, err := openWith(t, schema, 1).Pool().Exec(ctx, "ALTER TABLE outbox ALTER COLUMN payload TYPE jsonb USING payload::jsonb"); err != nil {
		t.Fatalf("alter: %v", err)
	}
	for i := range 3 {
		if err := batch(); err != nil {
			t.Errorf("batch %d after the change: %v", i, err)
		}
	}
}

func TestUpdateTaskConcurrentWritersAllApply(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	task := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	const n = 16
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.UpdateTask(ctx, "", task.ID, func(t *commonops.Task) (commonops.Change, error) {
				t.ProcessedItems++
				t.Version++
				return commonops.Change{}, nil
			})
			if err != nil {
				t.Errorf("update: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := s.GetTask(ctx, "acme", task.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.ProcessedItems != n || got.Version != 1+n {
		t.Errorf("got processed %d version %d, want %d and %d", got.ProcessedItems, got.Version, n, 1+n)
	}
}

func TestClaimNextNeverHandsATaskOutTwice(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	const tasks, workers = 40, 6
	for range tasks {
		create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	}
	create(t, s, commonops.CreateInput{TaskType: "export", EntityType: "product"}) // not of the claimed kind
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				got, err := s.ClaimNext(ctx, store.ClaimParams{WorkerID: fmt.Sprint("w", w), Lease: time.Minute, Limit: 3, Now: time.Now(),
					Kinds: []commonops.Kind{{TaskType: "import", EntityType: "*"}}})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, task := range got {
					seen[task.ID]++
					if task.Status != commonops.StatusProcessing || task.Attempt != 1 {
						t.Errorf("claimed task: got %s attempt %d, want processing attempt 1", task.Status, task.Attempt)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != tasks {
		t.Errorf("got %d distinct claimed tasks, want %d", len(seen), tasks)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("task %s claimed %d times, want once", id, n)
		}
	}
}

func TestOutboxSignalCrossesReplicas(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	writer, reader := openIn(t, schema), openIn(t, schema)
	other := openStore(t) // another schema: must not be woken
	ctx := context.Background()

	drain := func(s *postgres.Store) {
		for {
			select {
			case <-s.OutboxSignal():
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain(reader) // the signal sent when the listener connected
	drain(other)
	create(t, writer, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	select {
	case <-reader.OutboxSignal():
	case <-time.After(10 * time.Second):
		t.Fatal("got no outbox signal in the other replica, want one")
	}
	select {
	case <-other.OutboxSignal():
		t.Error("got an outbox signal in another schema, want none")
	case <-time.After(300 * time.Millisecond):
	}

	var published []outbox.Message
	n, err := reader.DeliverOutbox(ctx, 10, func(_ context.Context, msgs []outbox.Message) (int, error) {
		published = msgs
		return len(msgs), nil
	})
	if err != nil || n != 1 {
		t.Fatalf("deliver: got %d, %v, want 1, nil", n, err)
	}
	var task commonops.Task
	if err := json.Unmarshal(published[0].Payload, &task); err != nil || task.Status != commonops.StatusPending || published[0].Topic != commonops.TopicCreated {
		t.Errorf("got message %s %s (%v), want %s with the pending task", published[0].Topic, published[0].Payload, err, commonops.TopicCreated)
	}
	if backlog, _, err := reader.OutboxStats(ctx); err != nil || backlog != 0 {
		t.Errorf("backlog: got %d, %v, want 0", backlog, err)
	}
}

// TestNotifiesOnlyWithPeers: a store alone on its schema sends no NOTIFY
// after its writes (it wakes its own relay directly); when another store
// says hello on the schema, the writer notifies for the writes it left
// out, and its writes notify again.
func TestNotifiesOnlyWithPeers(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	spy, err := pgx.Connect(ctx, testdb.PostgresURL(t)) // listens, holds no listener lock
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { spy.Close(context.Background()) })
	if _, err := spy.Exec(ctx, "LISTEN commonops_outbox"); err != nil {
		t.Fatalf("listen: %v", err)
	}
	// expect wants exactly want notifications of schema on the spy: each
	// within 10 s, then none for 500 ms.
	expect := func(what string, want int) {
		t.Helper()
		for n := 0; ; n++ {
			wait := 10 * time.Second
			if n >= want {
				wait = 500 * time.Millisecond
			}
			wctx, cancel := context.WithTimeout(ctx, wait)
			m, err := spy.WaitForNotification(wctx)
			cancel()
			if err != nil && n < want {
				t.Fatalf("notifications %s: got %d, want %d", what, n, want)
			}
			if err != nil {
				return
			}
			if m.Payload != schema {
				n--
			} else if n >= want {
				t.Fatalf("notifications %s: got more than %d", what, want)
			}
		}
	}

	writer := openIn(t, schema)
	expect("when the writer started (its hello)", 1)
	for range 5 {
		create(t, writer, commonops.CreateInput{TaskType: "import", EntityType: "product"})
		time.Sleep(20 * time.Millisecond)
	}
	expect("of a store alone on its schema", 0)

	reader := openIn(t, schema)
	// Its hello, and the writer's NOTIFY for the writes it left out.
	expect("when the reader started", 2)
	for len(reader.OutboxSignal()) > 0 {
		<-reader.OutboxSignal()
	}
	create(t, writer, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	select {
	case <-reader.OutboxSignal():
	case <-time.After(10 * time.Second):
		t.Fatal("the reader got no outbox signal, want one")
	}
	expect("of a write with a peer listening", 1)
}

func TestDeliverOutboxPartialFailure(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	for range 3 {
		create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	}
	boom := errors.New("pubsub down")
	n, err := s.DeliverOutbox(ctx, 10, func(context.Context, []outbox.Message) (int, error) { return 1, boom })
	if n != 1 || !errors.Is(err, boom) {
		t.Fatalf("deliver: got %d, %v, want 1 and the publish error", n, err)
	}
	var attempts []int
	_, err = s.DeliverOutbox(ctx, 10, func(_ context.Context, msgs []outbox.Message) (int, error) {
		for _, m := range msgs {
			attempts = append(attempts, m.Attempts)
		}
		return len(msgs), nil
	})
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	if !reflect.DeepEqual(attempts, []int{1, 1}) {
		t.Errorf("got attempts %v of the unsent rows, want [1 1]", attempts)
	}
	pruned, err := s.PruneOutbox(ctx, time.Now().Add(time.Minute), 100)
	if err != nil || pruned != 3 {
		t.Errorf("prune: got %d, %v, want 3", pruned, err)
	}
}

func TestTryLead(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	steps := []struct {
		holder string
		ttl    time.Duration
		want   bool
	}{
		{"a", time.Minute, true},
		{"b", time.Minute, false},
		{"a", time.Minute, true},
		{"a", -time.Second, true}, // renewal into the past: expired at once
		{"b", time.Minute, true},
	}
	for i, st := range steps {
		got, err := s.TryLead(ctx, "maintenance", st.holder, st.ttl)
		if err != nil || got != st.want {
			t.Fatalf("step %d (%s): got %v, %v, want %v", i, st.holder, got, err, st.want)
		}
	}
	if err := s.Resign(ctx, "maintenance", "b"); err != nil {
		t.Fatalf("resign: %v", err)
	}
	if got, err := s.TryLead(ctx, "maintenance", "a", time.Minute); err != nil || !got {
		t.Errorf("after resign: got %v, %v, want true", got, err)
	}
}

func TestMigrateConcurrentOpens(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	const n = 3
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	url := testdb.PostgresURL(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(context.Background(), postgres.Config{URL: url, Schema: schema, MaxConns: 2})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	ctx := context.Background()
	var versions, distinct int
	if err := stores[0].Pool().QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&versions, &distinct); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if versions == 0 || versions != distinct {
		t.Errorf("got %d migration rows for %d versions, want each version once", versions, distinct)
	}
	if err := stores[1].Migrate(ctx); err != nil {
		t.Errorf("migrate again: got %v, want nil", err)
	}
	create(t, stores[2], commonops.CreateInput{TaskType: "import", EntityType: "product"})
}

func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, postgres.Config{URL: "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"})
	if got := commonops.ErrorCode(err); got != commonops.EUNAVAILABLE {
		t.Errorf("got %q (%v), want %q", got, err, commonops.EUNAVAILABLE)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	s := openIn(t, newSchema(t))
	task := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	_, err := s.GetTask(context.Background(), "acme", task.ID)
	if got := commonops.ErrorCode(err); got != commonops.EUNAVAILABLE {
		t.Errorf("get: got %q (%v), want %q", got, err, commonops.EUNAVAILABLE)
	}
	// Writes handed to the (stopped) write groups too.
	another, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
	_, err = s.CreateTask(context.Background(), another, ch, nil)
	if got := commonops.ErrorCode(err); got != commonops.EUNAVAILABLE {
		t.Errorf("create: got %q (%v), want %q", got, err, commonops.EUNAVAILABLE)
	}
}

func TestPoolSize(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	cases := []struct {
		name   string
		url    string
		config int32
		want   int32
	}{
		{"config", testdb.PostgresURL(t), 5, 5},
		{"url", testdb.PostgresURL(t) + "&pool_max_conns=3", 0, 3},
		{"config over url", testdb.PostgresURL(t) + "&pool_max_conns=3", 7, 7},
		{"default", testdb.PostgresURL(t), 0, max(int32(4*runtime.NumCPU()), postgres.MinMaxConns)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := postgres.Open(context.Background(), postgres.Config{URL: c.url, Schema: schema, MaxConns: c.config})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if got := s.Pool().Config().MaxConns; got != c.want {
				t.Errorf("got MaxConns %d, want %d", got, c.want)
			}
		})
	}
}

// With DeletePublished the rows a publish took are deleted, not marked; the
// ones it did not take stay, unsent.
func TestDeletePublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Config{URL: testdb.PostgresURL(t), Schema: newSchema(t), MaxConns: 4, DeletePublished: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		task, ch := newTask(t, "acme", commonops.CreateInput{TaskType: "export", EntityType: "product"})
		if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeliverOutbox(ctx, 10, func(_ context.Context, msgs []outbox.Message) (int, error) { return 2, nil })
	if err != nil || n != 2 {
		t.Fatalf("DeliverOutbox: got (%d, %v), want (2, nil)", n, err)
	}
	var rows, unsent int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox").Scan(&rows, &unsent); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || unsent != 1 {
		t.Fatalf("outbox rows after publishing 2 of 3: got %d (%d unsent), want 1 (1 unsent)", rows, unsent)
	}
}

// TestClaimTaskAfterConcurrentChange: a claim that waits for a row another
// transaction is changing meets the row under a new ctid once that commits,
// so its UPDATE matches nothing; ClaimTask must try again and claim it.
func TestClaimTaskAfterConcurrentChange(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 4)
	ctx := context.Background()
	tk := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var holder int
	if err := tx.QueryRow(ctx, "UPDATE tasks SET priority = 5, version = version + 1 WHERE id = $1 RETURNING pg_backend_pid()", tk.ID).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	type result struct {
		t   *commonops.Task
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := s.ClaimTask(ctx, tk.TenantID, tk.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: time.Now()})
		done <- result{c, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting int
		if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", holder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the claim did not wait for the row lock within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("ClaimTask after a concurrent change: %v", r.err)
	}
	if r.t.Status != commonops.StatusProcessing || r.t.Attempt != 1 || r.t.Priority != 5 {
		t.Fatalf("claimed task: got %s attempt %d priority %d, want processing, 1, 5 (the committed change kept)", r.t.Status, r.t.Attempt, r.t.Priority)
	}
}

// TestDeleteRacingWritesLeavesNoHistory: task_events has no foreign key
// (migration 0005), so DeleteTask must leave no history row behind even
// when a write of the task (a manual retry) races it: either the delete
// wins and the retry finds nothing, or the retry wins and the delete is
// refused.
func TestDeleteRacingWritesLeavesNoHistory(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 16)
	ctx := context.Background()
	const n = 40
	tasks := make([]*commonops.Task, n)
	for i := range tasks {
		tk := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product"})
		if _, err := s.UpdateTask(ctx, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(time.Now()) }); err != nil {
			t.Fatal(err)
		}
		tasks[i] = tk
	}
	var wg sync.WaitGroup
	for _, tk := range tasks {
		wg.Go(func() {
			_, err := s.DeleteTask(ctx, tk.TenantID, tk.ID)
			if code := commonops.ErrorCode(err); err != nil && code != commonops.ECONFLICT {
				t.Errorf("DeleteTask: %v", err)
			}
		})
		wg.Go(func() {
			_, err := s.UpdateTask(ctx, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Retry(false, time.Now()) })
			if code := commonops.ErrorCode(err); err != nil && code != commonops.ENOTFOUND {
				t.Errorf("retry: %v", err)
			}
		})
	}
	wg.Wait()
	var orphans, kept int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM task_events e WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM tasks`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Fatalf("history rows of deleted tasks: got %d, want 0", orphans)
	}
	t.Logf("%d of %d tasks retried before their delete", kept, n)
}

// TestDeleteRacingDeliveryLeavesNoFinishedDelivery: a delivery that
// finishes while its task is deleted is deleted by one or the other
// (DeleteTask waits for the record in flight, lockDeliveriesSQL; the record
// prunes once the task is gone, pruneDeliverySQL), never left behind.
func TestDeleteRacingDeliveryLeavesNoFinishedDelivery(t *testing.T) {
	t.Parallel()
	s := openWith(t, newSchema(t), 16)
	ctx := context.Background()
	const n = 40
	hook, ok := "https://hooks.example.com/done", 200
	for range n {
		tk := create(t, s, commonops.CreateInput{TaskType: "import", EntityType: "product", CallbackURL: &hook})
		if _, err := s.UpdateTask(ctx, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(time.Now()) }); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.ClaimDeliveries(ctx, time.Now().Add(time.Second), time.Minute, 2*n)
	if err != nil || len(ds) != n {
		t.Fatalf("ClaimDeliveries: got %d, %v, want %d", len(ds), err, n)
	}
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() {
			if _, err := s.DeleteTask(ctx, d.TenantID, d.TaskID); err != nil {
				t.Errorf("DeleteTask: %v", err)
			}
		})
		wg.Go(func() {
			d.Record(commonops.DeliveryAttempt{Attempt: 1, At: time.Now().UTC().Truncate(time.Microsecond), OK: true, StatusCode: &ok}, nil)
			if err := s.RecordDeliveryAttempt(ctx, d); err != nil && commonops.ErrorCode(err) != commonops.ENOTFOUND {
				t.Errorf("RecordDeliveryAttempt: %v", err)
			}
		})
	}
	wg.Wait()
	var left, attempts int
	if err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_deliveries), (SELECT count(*) FROM webhook_attempts)`).Scan(&left, &attempts); err != nil {
		t.Fatal(err)
	}
	if left != 0 || attempts != 0 {
		t.Fatalf("deliveries and attempts of deleted tasks: got %d and %d, want 0 and 0", left, attempts)
	}
}
