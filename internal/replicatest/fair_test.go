package replicatest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestFairSharesAcrossProcesses runs two commonops processes (every role,
// the embedded bus, two worker slots each) on one PostgreSQL schema and
// checks issue 16's fair shares across them: tenant big queues 160 short
// tasks through both, and once it has kept the four slots busy for a while
// tenant small queues 12. Each process remembers big's recent claims
// (--fair-half-life), so small's 12 take the next freed slots in both
// processes and big starts almost nothing until they have all started.
// With shares of running tasks only, small would get every other slot once
// it ran as many tasks as big, and big would start about 10 meanwhile.
func TestFairSharesAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two commonops processes on PostgreSQL; run without -short")
	}
	const (
		bigTasks   = 160
		smallTasks = 12
		taskMs     = 100
		// A poll round of each process may be under way when small's
		// tasks commit, and claim big's tasks for the slots it found.
		bigAllowed = 4
	)
	bin := build(t)
	dbURL, conn := schema(t)
	ctx := context.Background()
	var procs []*replica
	for i := range 2 {
		r := newReplica(t, bin, fmt.Sprintf("node-%d", i+1), "api,worker,maintenance", dbURL)
		r.env = []string{"COMMONOPS_PUBSUB=embedded", "COMMONOPS_WORKER_CONCURRENCY=2", "COMMONOPS_POLL_INTERVAL=200ms"}
		r.start(t) // one after the other: the first applies the migrations
		procs = append(procs, r)
	}
	create := func(tenant string, i int) {
		postAs(t, tenant, procs[i%len(procs)].base()+"/api/v1/operations/tasks",
			map[string]any{"taskType": "noop", "entityType": tenant, "params": map[string]any{"sleepMs": taskMs}}, http.StatusCreated)
	}
	// big's queue is full before it runs (but for its first task, which
	// makes noop a type the pause knows), however slowly the creates go on
	// a loaded machine.
	api := procs[0].base() + "/api/v1/operations"
	create("big", 0)
	postAs(t, "big", api+"/flow-controls/noop/pause", nil, http.StatusOK)
	for i := 1; i < bigTasks; i++ {
		create("big", i)
	}
	postAs(t, "big", api+"/flow-controls/noop/resume", nil, http.StatusOK)
	// big's claims build up in both processes' memory.
	deadline := time.Now().Add(30 * time.Second)
	for count(t, conn, `SELECT count(*) FROM tasks WHERE tenant_id = 'big' AND status = 'completed'`) < 24 {
		if time.Now().After(deadline) {
			t.Fatal("big's tasks did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var since time.Time
	if err := conn.QueryRow(ctx, `SELECT now()`).Scan(&since); err != nil {
		t.Fatal(err)
	}
	for i := range smallTasks {
		create("small", i)
	}
	for count(t, conn, `SELECT count(*) FROM tasks WHERE tenant_id = 'small' AND started_at IS NOT NULL`) < smallTasks {
		if time.Now().After(deadline) {
			t.Fatal("small's tasks did not all start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if left := count(t, conn, `SELECT count(*) FROM tasks WHERE tenant_id = 'big' AND status = 'pending'`); left < 40 {
		t.Fatalf("big had %d tasks left pending when small's had all started: the queue ran dry, so the turns were not tested", left)
	}
	bigStarted := count(t, conn, `SELECT count(*) FROM tasks WHERE tenant_id = 'big' AND started_at >= $1
		AND started_at <= (SELECT max(started_at) FROM tasks WHERE tenant_id = 'small')`, since)
	if bigStarted > bigAllowed {
		t.Errorf("big started %d tasks while small's %d waited, want at most %d (claims under way when small's arrived)", bigStarted, smallTasks, bigAllowed)
	}
	var waited time.Duration
	if err := conn.QueryRow(ctx, `SELECT max(started_at) - $1 FROM tasks WHERE tenant_id = 'small'`, since).Scan(&waited); err != nil {
		t.Fatal(err)
	}
	t.Logf("small's %d tasks all started within %s of their creates; big started %d meanwhile", smallTasks, waited.Round(time.Millisecond), bigStarted)
}
