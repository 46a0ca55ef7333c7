package replicatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops/webhook"
)

// The flow test's shape.
const (
	flowTenant    = "acme"
	flowLimit     = 2    // --flow-limits noop=2
	sleepers      = 12   // noop tasks of sleepMs each, run under the limit
	sleepMs       = 1000 // long enough for a 5 ms sampler to see them run
	schedules     = 150  // schedules forced due at once, each round
	rounds        = 3
	webhookSecret = "flow-test-webhook-secret"
	flowSettle    = 45 * time.Second
)

// TestFlowAcrossProcesses runs three commonops processes (api, worker and
// maintenance roles each, the embedded bus, no Dapr) on one PostgreSQL
// schema and checks issue 16's flow controls across them:
//
//   - a concurrency limit of a task type holds in all of them together:
//     each process runs one task at a time, so 3 could run, and a sampler
//     of the tasks table never sees more than --flow-limits noop=2 running,
//     sees 2 (the limit is reached, so the check can fail), and sees them
//     held by at least two processes;
//   - schedules create exactly one task per tick while the maintenance
//     leadership is taken from its holder every 50 ms, so every process
//     leads and fires due ticks, often at the same time;
//   - a pause holds the type's tasks created through any process in all of
//     them, and the resume lets them run;
//   - a task past its timeoutSeconds fails with a timeout error long before
//     its processor would have ended;
//   - every terminal task is POSTed exactly once to its subscription, and
//     once to its callbackUrl when it has one, signed with the tenant's key,
//     by dispatchers racing in all three processes.
func TestFlowAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three commonops processes on PostgreSQL; run without -short")
	}
	bin := build(t)
	dbURL, conn := schema(t)
	ctx := context.Background()
	begin := time.Now()
	recv := newReceiver(t)

	env := []string{
		"COMMONOPS_PUBSUB=embedded",
		"COMMONOPS_ROLES=api,worker,maintenance",
		fmt.Sprintf("COMMONOPS_FLOW_LIMITS=noop=%d", flowLimit),
		"COMMONOPS_WEBHOOK_SECRET=" + webhookSecret,
		"COMMONOPS_WEBHOOK_ALLOW=127.0.0.1",
		"COMMONOPS_POLL_INTERVAL=200ms",
		// One task at a time in each process: the limit's 2 running at once
		// are then in two processes, and without the limit 3 would run.
		"COMMONOPS_WORKER_CONCURRENCY=1",
		"COMMONOPS_LOG_LEVEL=info", // the "schedule tick skipped ... raced" lines are counted
	}
	var procs []*replica
	for i := range 3 {
		r := newReplica(t, bin, fmt.Sprintf("node-%d", i+1), "api,worker,maintenance", dbURL)
		r.env = env
		r.start(t) // one after the other: the first applies the migrations
		procs = append(procs, r)
	}
	t.Logf("%s: three processes ready", time.Since(begin).Round(time.Millisecond))
	api := func(i int) string { return procs[i%len(procs)].base() + "/api/v1/operations" }

	post(t, api(0)+"/webhooks", map[string]any{"taskType": "noop", "url": recv.url + "/sub"}, http.StatusCreated)

	// (a) The limit: the sleepers, created through every process, each with
	// a callbackUrl too.
	for i := range sleepers {
		post(t, api(i)+"/tasks", map[string]any{
			"taskType": "noop", "entityType": "sleeper", "params": map[string]any{"sleepMs": sleepMs},
			"callbackUrl": recv.url + "/cb",
		}, http.StatusCreated)
	}
	maxRunning, owners := 0, map[string]bool{}
	deadline := time.Now().Add(flowSettle)
	for {
		var running, completed int
		var holders []string
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'processing'),
			count(*) FILTER (WHERE status = 'completed'),
			coalesce(array_agg(DISTINCT lease_owner) FILTER (WHERE status = 'processing'), '{}')
			FROM tasks WHERE task_type = 'noop'`).Scan(&running, &completed, &holders)
		if err != nil {
			t.Fatalf("sample running tasks: %v", err)
		}
		maxRunning = max(maxRunning, running)
		for _, h := range holders {
			owners[h] = true
		}
		if running > flowLimit {
			t.Fatalf("got %d noop tasks processing at once (held by %v), want at most the limit %d", running, holders, flowLimit)
		}
		if completed == sleepers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: got %d of %d sleepers completed, want all", flowSettle, completed, sleepers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if maxRunning != flowLimit {
		t.Errorf("got at most %d noop tasks processing at once, want the limit %d reached", maxRunning, flowLimit)
	}
	if len(owners) < 2 {
		t.Errorf("got the sleepers run by %d process(es) %v, want at least 2 of the 3", len(owners), owners)
	}
	t.Logf("%s: %d sleepers completed, never more than %d at once, run by %d processes",
		time.Since(begin).Round(time.Millisecond), sleepers, maxRunning, len(owners))

	// (b) Schedules: every minute in cron terms, forced due together each
	// round (a cron tick is at least a minute apart; the test cannot wait
	// for three of them). Meanwhile the leadership is taken away every
	// 50 ms, so each process's maintenance tick finds it free and fires.
	for i := range schedules {
		post(t, api(i)+"/schedules", map[string]any{
			"cron": "* * * * *", "overlap": "allow",
			"template": map[string]any{"taskType": "noop", "entityType": "tick"},
		}, http.StatusCreated)
	}
	leaders := churnLeadership(t, dbURL)
	for round := range rounds {
		tick := time.Now().UTC().Truncate(time.Millisecond)
		if _, err := conn.Exec(ctx, "UPDATE schedules SET next_run_at = $1", tick); err != nil {
			t.Fatalf("round %d: force the schedules due: %v", round+1, err)
		}
		deadline := time.Now().Add(flowSettle)
		for count(t, conn, "SELECT count(*) FROM schedules WHERE next_run_at <= $1", tick) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: after %s %d schedules are still due, want every tick fired", round+1, flowSettle,
					count(t, conn, "SELECT count(*) FROM schedules WHERE next_run_at <= $1", tick))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	holders := leaders()
	if len(holders) < 2 {
		t.Errorf("got the maintenance leadership held by %d process(es) while the ticks fired, want at least 2", len(holders))
	}
	// The ticks and the tasks are counted in one statement, one snapshot: a
	// real minute boundary makes every schedule due again meanwhile, and a
	// tick fired between two counts would be one and not the other.
	var ticks, tickTasks int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM (SELECT DISTINCT event_data->>'scheduleId', event_data->>'tick'
			FROM task_events WHERE event_type = 'created' AND event_data->>'scheduleId' IS NOT NULL) x),
		(SELECT count(*) FROM tasks WHERE entity_type = 'tick')`).Scan(&ticks, &tickTasks); err != nil {
		t.Fatalf("count the ticks and their tasks: %v", err)
	}
	if ticks < schedules*rounds {
		t.Errorf("got %d schedule ticks with a task, want at least %d (%d schedules, %d rounds)", ticks, schedules*rounds, schedules, rounds)
	}
	if got := count(t, conn, `SELECT count(*) FROM (SELECT 1 FROM task_events WHERE event_type = 'created' AND event_data->>'scheduleId' IS NOT NULL
		GROUP BY event_data->>'scheduleId', event_data->>'tick' HAVING count(*) <> 1) x`); got != 0 {
		t.Errorf("got %d schedule ticks with other than one task, want 0", got)
	}
	if tickTasks != ticks {
		t.Errorf("got %d tasks of schedules for %d ticks, want one per tick", tickTasks, ticks)
	}
	raced := 0
	for _, r := range procs {
		raced += strings.Count(r.log(), `"why":"raced"`)
	}
	t.Logf("%s: %d ticks fired by %d leaders; %d fires lost the race to another process",
		time.Since(begin).Round(time.Millisecond), ticks, len(holders), raced)

	// (d) Pause: paused tasks created through every process are claimed by
	// none of them until the resume, then all complete.
	post(t, api(0)+"/flow-controls/noop/pause", nil, http.StatusOK)
	paused := make([]string, 0, 6)
	for i := range 6 {
		var c struct {
			Task        struct{ ID string }
			QueuePaused bool
		}
		if err := json.Unmarshal(post(t, api(i)+"/tasks", map[string]any{"taskType": "noop", "entityType": "paused"}, http.StatusCreated), &c); err != nil {
			t.Fatal(err)
		}
		if !c.QueuePaused {
			t.Fatalf("create through %s while paused: got queuePaused false, want true", procs[i%len(procs)].name)
		}
		paused = append(paused, c.Task.ID)
	}
	// Each process polls every 200 ms: 1.5 s is several chances each.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n := count(t, conn, "SELECT count(*) FROM tasks WHERE id = ANY($1) AND status <> 'pending'", paused); n != 0 {
			t.Fatalf("got %d paused tasks claimed, want 0 until the resume", n)
		}
	}
	post(t, api(1)+"/flow-controls/noop/resume", nil, http.StatusOK)
	deadline = time.Now().Add(flowSettle)
	for count(t, conn, "SELECT count(*) FROM tasks WHERE id = ANY($1) AND status = 'completed'", paused) < len(paused) {
		if time.Now().After(deadline) {
			t.Fatalf("after the resume: got %d of %d tasks completed within %s, want all", count(t, conn, "SELECT count(*) FROM tasks WHERE id = ANY($1) AND status = 'completed'", paused), len(paused), flowSettle)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s: %d tasks created while paused stayed pending 1.5 s, completed after the resume", time.Since(begin).Round(time.Millisecond), len(paused))

	// (e) Time limit: a task that would sleep 8 s with timeoutSeconds 1 is
	// failed by the maintenance leader (any process) with a timeout error,
	// long before its sleep ends.
	var slow struct{ Task struct{ ID string } }
	if err := json.Unmarshal(post(t, api(2)+"/tasks", map[string]any{"taskType": "noop", "entityType": "slow",
		"params": map[string]any{"sleepMs": 8000}, "timeoutSeconds": 1, "maxRetries": 0}, http.StatusCreated), &slow); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(6 * time.Second)
	for count(t, conn, "SELECT count(*) FROM tasks WHERE id = $1 AND status = 'failed'", slow.Task.ID) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("task with timeoutSeconds 1 and sleepMs 8000: not failed within 6 s, want failed by its time limit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var msg string
	var secs float64
	if err := conn.QueryRow(ctx, "SELECT coalesce(error_message, ''), extract(epoch FROM coalesce(completed_at, updated_at) - started_at)::float8 FROM tasks WHERE id = $1", slow.Task.ID).Scan(&msg, &secs); err != nil {
		t.Fatal(err)
	}
	ran := time.Duration(secs * float64(time.Second))
	if !strings.HasPrefix(msg, "timeout:") || ran > 4*time.Second {
		t.Errorf("timed-out task: got error %q after %s, want an error starting timeout: within 4 s of its start", msg, ran)
	}
	t.Logf("%s: the task with timeoutSeconds 1 failed after %s: %s", time.Since(begin).Round(time.Millisecond), ran.Round(time.Millisecond), msg)

	// (c) Webhooks: wait for every task to end and every delivery to be
	// made, then compare what the receiver got with the tasks.
	deadline = time.Now().Add(flowSettle)
	for count(t, conn, "SELECT count(*) FROM tasks WHERE status NOT IN ('completed', 'failed', 'cancelled')") > 0 ||
		count(t, conn, "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: got %d tasks unfinished and %d deliveries not delivered, want none", flowSettle,
				count(t, conn, "SELECT count(*) FROM tasks WHERE status NOT IN ('completed', 'failed', 'cancelled')"),
				count(t, conn, "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := conn.Query(ctx, "SELECT id, callback_url IS NOT NULL FROM tasks")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for rows.Next() {
		var id string
		var callback bool
		if err := rows.Scan(&id, &callback); err != nil {
			t.Fatal(err)
		}
		want["/sub "+id] = 1
		if callback {
			want["/cb "+id] = 1
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	got, bad := recv.received()
	if bad != "" {
		t.Errorf("receiver: %s", bad)
	}
	wrong := 0
	for k, n := range want {
		if got[k] != n {
			if wrong < 5 {
				t.Errorf("POST %s: got %d, want %d", k, got[k], n)
			}
			wrong++
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			if wrong < 5 {
				t.Errorf("POST %s: got %d, want none (no such task)", k, n)
			}
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("got %d (path, task) pairs POSTed other than once, want 0", wrong)
	}
	t.Logf("%s: %d webhooks, each POSTed once, signed", time.Since(begin).Round(time.Millisecond), len(want))
}

// post sends body as JSON in flowTenant and answers the response body; it
// fails t unless the status is want.
func post(t *testing.T, url string, body any, want int) []byte {
	t.Helper()
	return postAs(t, flowTenant, url, body, want)
}

// postAs is post in tenant.
func postAs(t *testing.T, tenant, url string, body any, want int) []byte {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tenant-Id", tenant)
	req.Header.Set("X-User-Id", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: got %d %s, want %d", url, resp.StatusCode, bytes.TrimSpace(out), want)
	}
	return out
}

// count runs a query answering one integer.
func count(t *testing.T, conn *pgx.Conn, q string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// churnLeadership deletes the maintenance leadership every 50 ms until the
// returned function is called; that answers the holders it took it from.
func churnLeadership(t *testing.T, dbURL string) func() map[string]bool {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	holders := map[string]bool{}
	go func() {
		defer close(done)
		defer c.Close(context.Background())
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rows, err := c.Query(context.Background(), "DELETE FROM leaders WHERE name = 'maintenance' RETURNING holder")
			if err != nil {
				continue
			}
			for rows.Next() {
				var h string
				if rows.Scan(&h) == nil {
					holders[h] = true
				}
			}
			rows.Close()
		}
	}()
	var once sync.Once
	end := func() map[string]bool {
		once.Do(func() { close(stop); <-done })
		return holders
	}
	t.Cleanup(func() { end() })
	return end
}

// receiver is a webhook endpoint on loopback that counts the POSTs per
// path and task, and checks each one's signature.
type receiver struct {
	url  string
	mu   sync.Mutex
	got  map[string]int // "PATH TASK_ID" → POSTs
	ids  map[string]bool
	bad  string // the first wrong POST
	key  string
	dups int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}, ids: map[string]bool{}, key: webhook.TenantKey(webhookSecret, flowTenant)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev struct {
			Subject string `json:"subject"`
		}
		err := json.Unmarshal(body, &ev)
		valid := webhook.Verify(r.key, req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature), body, 5*time.Minute, time.Now())
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case err != nil || ev.Subject == "":
			r.fail("POST %s: a body without a subject: %.200s", req.URL.Path, body)
		case !valid:
			r.fail("POST %s for task %s: the signature does not verify under the tenant's key", req.URL.Path, ev.Subject)
		}
		id := req.Header.Get(webhook.HeaderID)
		if r.ids[id] {
			r.dups++
		}
		r.ids[id] = true
		r.got[req.URL.Path+" "+ev.Subject]++
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) fail(format string, args ...any) {
	if r.bad == "" {
		r.bad = fmt.Sprintf(format, args...)
	}
}

// received answers the POSTs counted and the first wrong one ("" when
// none was).
func (r *receiver) received() (map[string]int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := make(map[string]int, len(r.got))
	for k, n := range r.got {
		got[k] = n
	}
	bad := r.bad
	if bad == "" && r.dups > 0 {
		bad = fmt.Sprintf("%d POSTs repeated a Webhook-Id already received", r.dups)
	}
	return got, bad
}
