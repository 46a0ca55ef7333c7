package replicatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/internal/testdb"
)

// The run's shape.
const (
	tasks       = 10000
	killAt      = 2000 // creates before the SIGKILL of a worker replica
	rollAt      = 5000 // creates before the rolling restart
	clients     = 8    // concurrent creating clients
	settleLimit = 3 * time.Minute
)

func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three commonops processes and three daprd; run without -short")
	}
	bin := build(t)
	// One broker after the other: the machine's cores are the limit.
	for _, broker := range []daprtest.Broker{daprtest.BrokerRedis, daprtest.BrokerRabbitMQ} {
		t.Run(string(broker), func(t *testing.T) { suite(t, bin, broker) })
	}
}

func suite(t *testing.T, bin string, broker daprtest.Broker) {
	dbURL, conn := schema(t)
	begin := time.Now()

	api := newReplica(t, bin, "api", "api", dbURL)
	w1 := newReplica(t, bin, "worker-1", "worker,maintenance", dbURL)
	w2 := newReplica(t, bin, "worker-2", "worker,maintenance", dbURL)
	for _, r := range []*replica{w1, w2, api} {
		r.start(t)
	}
	opts := []daprtest.Option{daprtest.Broadcast(), daprtest.WithBroker(broker)}
	w1.sidecar = daprtest.Start(t, w1.appPort, append(opts, daprtest.HTTPPort(w1.daprPort))...)
	w2.sidecar = daprtest.Start(t, w2.appPort, append(opts, daprtest.HTTPPort(w2.daprPort), daprtest.Join(w1.sidecar))...)
	api.sidecar = daprtest.Start(t, 0, append(opts, daprtest.HTTPPort(api.daprPort), daprtest.Join(w1.sidecar))...)

	var (
		next     atomic.Int64
		created  atomic.Int64
		failed   atomic.Int64
		retried  atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= tasks {
					return
				}
				n, err := create(client, api.base(), "key-"+strconv.FormatInt(i, 10))
				retried.Add(int64(n))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				created.Add(1)
			}
		})
	}
	wait := func(n int64) {
		for created.Load() < n && failed.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}

	wait(killAt)
	t.Logf("%s: %d created; SIGKILL of worker-1 and its sidecar", time.Since(begin).Round(time.Second), created.Load())
	w1.kill()
	w1.sidecar.Kill()
	w1.start(t)
	w1.sidecar.Restart()

	wait(rollAt)
	t.Logf("%s: %d created; rolling SIGTERM restart", time.Since(begin).Round(time.Second), created.Load())
	for _, r := range []*replica{api, w1, w2} {
		r.stop(t)
		r.start(t)
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("got %d failed creates (first: %v), want none", n, firstErr.Load())
	}
	t.Logf("%s: %d created, %d retries after connection errors", time.Since(begin).Round(time.Second), created.Load(), retried.Load())

	ctx := context.Background()
	count := func(q string) int {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	deadline := time.Now().Add(settleLimit)
	for count("SELECT count(*) FROM tasks WHERE status = 'completed'") < tasks || count("SELECT count(*) FROM outbox WHERE sent_at IS NULL") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: got %d of %d tasks completed and %d outbox rows unsent, want all completed and none unsent",
				settleLimit, count("SELECT count(*) FROM tasks WHERE status = 'completed'"), tasks, count("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := count("SELECT count(*) FROM tasks"); got != tasks {
		t.Errorf("got %d tasks, want %d (one per Idempotency-Key)", got, tasks)
	}
	if got := count("SELECT count(*) FROM (SELECT task_id FROM task_events WHERE event_type = 'completed' GROUP BY task_id HAVING count(*) <> 1) x"); got != 0 {
		t.Errorf("got %d tasks with other than one completed event, want 0", got)
	}
	if got := count("SELECT count(DISTINCT task_id) FROM task_events WHERE event_type = 'completed'"); got != tasks {
		t.Errorf("got %d tasks with a completed event, want %d", got, tasks)
	}
	t.Logf("%s: %d tasks completed once each, outbox empty", time.Since(begin).Round(time.Second), tasks)
}

// create posts one noop task with key, retrying on connection errors (the
// API replica restarting), and returns how many retries it took. Any answer
// but 201 is a failure.
func create(client *http.Client, base, key string) (retries int, err error) {
	body := []byte(`{"taskType":"noop","entityType":"x"}`)
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/operations/tasks", bytes.NewReader(body))
		if err != nil {
			return retries, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			if time.Now().After(deadline) {
				return retries, fmt.Errorf("create %s: still failing after a minute: %w", key, err)
			}
			retries++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return retries, fmt.Errorf("create %s: got %d %s, want 201", key, resp.StatusCode, bytes.TrimSpace(b))
		}
		return retries, nil
	}
}

// replica is one commonops process with fixed ports, so that it comes back
// where its sidecar and the client expect it.
type replica struct {
	name, roles     string
	bin, dbURL, dir string
	port            int // the API, probes, metrics
	daprPort        int // its sidecar's HTTP API
	appPort         int // its Dapr subscription routes (workers)
	sidecar         daprtest.Sidecar
	env             []string // COMMONOPS_* settings over start's
	cmd             *exec.Cmd
	done            chan struct{}
	logs            *bytes.Buffer
	logMu           sync.Mutex
}

func newReplica(t *testing.T, bin, name, roles, dbURL string) *replica {
	r := &replica{name: name, roles: roles, bin: bin, dbURL: dbURL, dir: t.TempDir(),
		port: daprtest.FreePort(t), daprPort: daprtest.FreePort(t), appPort: daprtest.FreePort(t), logs: &bytes.Buffer{}}
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			r.logMu.Lock()
			tail := r.logs.Bytes()
			if len(tail) > 8<<10 {
				tail = tail[len(tail)-8<<10:]
			}
			t.Logf("%s log (tail):\n%s", r.name, tail)
			r.logMu.Unlock()
		}
	})
	return r
}

func (r *replica) base() string { return fmt.Sprintf("http://127.0.0.1:%d", r.port) }

// start runs the process and waits until its /readyz answers 200.
func (r *replica) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(r.bin, "serve")
	cmd.Env = append(os.Environ(),
		"COMMONOPS_ADDR=127.0.0.1:"+strconv.Itoa(r.port),
		"COMMONOPS_ROLES="+r.roles,
		"COMMONOPS_DATABASE_URL="+r.dbURL,
		"COMMONOPS_DB_MAX_CONNS=8",
		"COMMONOPS_DATA_DIR="+r.dir,
		"COMMONOPS_PUBSUB=dapr",
		"COMMONOPS_DAPR_URL=http://127.0.0.1:"+strconv.Itoa(r.daprPort),
		"COMMONOPS_DAPR_APP_ADDR=127.0.0.1:"+strconv.Itoa(r.appPort),
		"COMMONOPS_DAPR_BROADCAST_PUBSUB=broadcast",
		"COMMONOPS_DRAIN_DELAY=500ms",
		"COMMONOPS_SHUTDOWN_TIMEOUT=10s",
		"COMMONOPS_LEASE=5s",
		"COMMONOPS_POLL_INTERVAL=1s",
		"COMMONOPS_QUOTA_CREATES_PER_MINUTE=0",
		"COMMONOPS_LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, r.env...) // the last of a duplicate key wins
	r.logMu.Lock()
	fmt.Fprintf(r.logs, "--- start %s\n", time.Now().Format(time.RFC3339Nano))
	r.logMu.Unlock()
	w := &lockedWriter{mu: &r.logMu, w: r.logs}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(r.base() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("%s exited during start-up", r.name)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 30s", r.name)
		}
	}
}

// stop sends SIGTERM and waits for the process to drain and exit.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after SIGTERM", r.name)
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited with %d after SIGTERM, want 0", r.name, code)
	}
	r.cmd = nil
}

// log is what the process has written so far.
func (r *replica) log() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.logs.String()
}

// kill ends the process at once, as a crashed machine would.
func (r *replica) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// build compiles commonops once for the test.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "commonops")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/commonops/commonops/cmd/commonops")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// schema makes a PostgreSQL schema of its own, migrated by the first
// replica, and returns its URL and a connection to check the outcome.
func schema(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	base := testdb.PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "replicas_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL at %s: %v", base, err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
		conn.Close(context.Background())
	})
	if _, err := conn.Exec(ctx, "SET search_path TO "+name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), conn
}
