package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/internal/s3test"
	"github.com/commonops/commonops/internal/testdb"
)

// TestMain lets the test binary run as the service itself in a child
// process (COMMONOPS_TEST_CHILD=1), so tests can SIGKILL it.
func TestMain(m *testing.M) {
	if os.Getenv("COMMONOPS_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "commonops:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pgSchema returns a database URL whose search_path is a fresh schema,
// dropped when the test ends, and a connection to look at it.
func pgSchema(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "e2e_" + hex.EncodeToString(b[:])
	base := testdb.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL at %s: %v", base, err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	if _, err := conn.Exec(ctx, "SET search_path TO "+schema); err != nil {
		t.Fatal(err)
	}
	return u.String(), conn
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sidecarProxy stands where the service expects its Dapr sidecar, so a test
// can start the real sidecar after the service (daprd waits for its app) and
// take it away again: with no target it answers 503, as a sidecar that is
// down would fail the publish.
type sidecarProxy struct {
	URL    string
	target atomic.Pointer[url.URL]
}

func newSidecarProxy(t *testing.T) *sidecarProxy {
	p := &sidecarProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := p.target.Load()
		if target == nil {
			http.Error(w, "sidecar down", http.StatusServiceUnavailable)
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *sidecarProxy) point(base string) {
	u, _ := url.Parse(base)
	p.target.Store(u)
}

func count(t *testing.T, conn *pgx.Conn, query string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitCount polls query until it answers want or within passes.
func waitCount(t *testing.T, conn *pgx.Conn, query string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := count(t, conn, query)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			var states []string
			rows, _ := conn.Query(context.Background(), "SELECT status || '/' || upload_status || ' attempt ' || attempt, count(*) FROM tasks GROUP BY 1")
			for rows.Next() {
				var s string
				var n int
				_ = rows.Scan(&s, &n)
				states = append(states, fmt.Sprintf("%s: %d", s, n))
			}
			rows.Close()
			t.Fatalf("%s: got %d, want %d within %s (tasks: %v)", query, got, want, within, states)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The production stack: PostgreSQL, a real S3 server that checks SigV4
// signatures, and a real Dapr sidecar delivering the events back to the
// worker. The fallback poller is off, so the task runs only if the event
// made the whole trip.
func TestProductionStack(t *testing.T) {
	dbURL, conn := pgSchema(t)
	s3 := s3test.Start(t)
	proxy := newSidecarProxy(t)
	appPort := freePort(t)
	in := start(t, s3Env(s3, map[string]string{
		"COMMONOPS_DAPR_APP_ADDR": fmt.Sprintf("127.0.0.1:%d", appPort),
		"COMMONOPS_DATABASE_URL":  dbURL,
		"COMMONOPS_PUBSUB":        "dapr",
		"COMMONOPS_DAPR_URL":      proxy.URL,
		"COMMONOPS_POLL_INTERVAL": "1h",
	}))
	sidecar := daprtest.Start(t, appPort)
	proxy.point(sidecar.BaseURL)
	// Deliveries go to their own loopback listener: the API port takes none.
	for _, path := range []string{"/dapr/subscribe", "/dapr/events/" + "operations.task.created"} {
		resp, err := http.Post(in.base+path, "application/cloudevents+json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("POST %s on the API port: got %d, want 404", path, resp.StatusCode)
		}
	}

	input := bytes.Repeat([]byte("sku,name\nA-1,shoe\n"), 1000)
	var c created
	in.call(t, http.MethodPost, "/tasks", map[string]any{"taskType": "noop", "entityType": "demo", "fileName": "../in.csv", "fileSize": len(input), "contentType": "text/csv"}, http.StatusCreated, &c)
	if c.UploadMethod != http.MethodPut || !strings.Contains(c.UploadURL, "X-Amz-Signature=") {
		t.Fatalf("got %s %s, want a SigV4 pre-signed PUT", c.UploadMethod, c.UploadURL)
	}
	// A tampered URL is refused by the S3 server itself.
	tampered := c
	tampered.UploadURL = strings.Replace(c.UploadURL, "X-Amz-Signature=", "X-Amz-Signature=0", 1)
	req, _ := http.NewRequest(http.MethodPut, tampered.UploadURL, bytes.NewReader(input))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered upload: got %v %v, want 403", resp.StatusCode, err)
	}
	// Before the upload, upload-complete says what is missing.
	in.call(t, http.MethodPost, "/tasks/"+c.Task.ID+"/upload-complete", nil, http.StatusConflict, nil)

	upload(t, c, input)
	in.call(t, http.MethodPost, "/tasks/"+c.Task.ID+"/upload-complete", nil, http.StatusOK, nil)
	in.waitStatus(t, c.Task.ID, "completed", 30*time.Second)
	if got := in.download(t, c.Task.ID, "input"); !bytes.Equal(got, input) {
		t.Fatalf("input round trip: got %d bytes, want %d", len(got), len(input))
	}
	// The completed event commits with the task; the relay publishes it
	// right after.
	waitCount(t, conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", 0, 10*time.Second)

	// Deleting the task deletes its objects.
	in.call(t, http.MethodDelete, "/tasks/"+c.Task.ID, nil, http.StatusNoContent, nil)
	client, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	for obj := range client.ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Prefix: "tasks/" + c.Task.ID + "/", Recursive: true}) {
		t.Fatalf("object %s left after delete (err %v)", obj.Key, obj.Err)
	}
}

// child is commonops in its own process (the test binary re-run), so it can
// be killed without any chance to clean up.
func startChild(t *testing.T, env map[string]string) (base string, kill func()) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(os.Environ(), "COMMONOPS_TEST_CHILD=1", fmt.Sprintf("COMMONOPS_ADDR=127.0.0.1:%d", port),
		"COMMONOPS_DATA_DIR="+t.TempDir(), "COMMONOPS_LOG_LEVEL=warn")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill = func() {
		if !killed {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			t.Logf("child log:\n%s", logs.String())
		}
	})
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return base, kill
		}
		if time.Now().After(deadline) {
			t.Fatalf("child did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Events committed but not yet published when the process dies are
// published after the restart: the process is SIGKILLed while its sidecar is
// unreachable, and the next process (with the sidecar back, and the fallback
// poller off) runs every task through the events alone.
func TestKillBetweenCommitAndPublish(t *testing.T) {
	const n = 20
	dbURL, conn := pgSchema(t)
	proxy := newSidecarProxy(t) // no target yet: publishing fails
	// The first process only takes requests: no worker of its own may claim
	// a task before it dies.
	base, kill := startChild(t, map[string]string{
		"COMMONOPS_ROLES":        "api",
		"COMMONOPS_DATABASE_URL": dbURL,
		"COMMONOPS_PUBSUB":       "dapr",
		"COMMONOPS_DAPR_URL":     proxy.URL,
	})
	first := &instance{base: base}
	for range n {
		first.call(t, http.MethodPost, "/tasks", map[string]any{"taskType": "noop", "entityType": "demo"}, http.StatusCreated, nil)
	}
	kill()
	if got := count(t, conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND topic = 'operations.task.created'"); got != n {
		t.Fatalf("unsent created events after the kill: got %d, want %d", got, n)
	}

	appPort := freePort(t)
	second := start(t, map[string]string{
		"COMMONOPS_DAPR_APP_ADDR": fmt.Sprintf("127.0.0.1:%d", appPort),
		"COMMONOPS_DATABASE_URL":  dbURL,
		"COMMONOPS_PUBSUB":        "dapr",
		"COMMONOPS_DAPR_URL":      proxy.URL,
		"COMMONOPS_POLL_INTERVAL": "1h",
	})
	sidecar := daprtest.Start(t, appPort)
	proxy.point(sidecar.BaseURL)

	waitCount(t, conn, "SELECT count(*) FROM tasks WHERE status = 'completed'", n, 60*time.Second)
	waitCount(t, conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", 0, 10*time.Second)
	_ = second
	// Each task was claimed exactly once: one started event per task.
	if got := count(t, conn, "SELECT count(*) FROM task_events WHERE event_type = 'started'"); got != n {
		t.Fatalf("started events: got %d, want %d (a task ran twice)", got, n)
	}
}

// With the sidecar down the API keeps accepting tasks and the fallback
// poller runs them; when the sidecar comes back the outbox drains to zero.
func TestSidecarDownPollerRunsTasks(t *testing.T) {
	const n = 500
	dbURL, conn := pgSchema(t)
	proxy := newSidecarProxy(t) // no sidecar behind it yet
	appPort := freePort(t)
	in := start(t, map[string]string{
		"COMMONOPS_DAPR_APP_ADDR": fmt.Sprintf("127.0.0.1:%d", appPort),
		"COMMONOPS_DATABASE_URL":  dbURL,
		"COMMONOPS_PUBSUB":        "dapr",
		"COMMONOPS_DAPR_URL":      proxy.URL,
		"COMMONOPS_POLL_INTERVAL": "200ms",
	})
	var health struct {
		Status string `json:"status"`
	}
	in.call(t, http.MethodGet, "/health", nil, http.StatusServiceUnavailable, &health)
	for range n {
		in.call(t, http.MethodPost, "/tasks", map[string]any{"taskType": "noop", "entityType": "demo"}, http.StatusCreated, nil)
	}
	waitCount(t, conn, "SELECT count(*) FROM tasks WHERE status = 'completed'", n, 60*time.Second)
	if got := count(t, conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"); got < n {
		t.Fatalf("unsent events while the sidecar is down: got %d, want at least %d", got, n)
	}

	sidecar := daprtest.Start(t, appPort)
	proxy.point(sidecar.BaseURL)
	waitCount(t, conn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", 0, 60*time.Second)
	in.call(t, http.MethodGet, "/health", nil, http.StatusOK, &health)
	// The late created events found every task done: none ran twice.
	if got := count(t, conn, "SELECT count(*) FROM task_events WHERE event_type = 'started'"); got != n {
		t.Fatalf("started events: got %d, want %d", got, n)
	}
}

// s3Env adds to env the settings that store files on the S3 server s.
func s3Env(s s3test.Server, env map[string]string) map[string]string {
	env["COMMONOPS_STORAGE"] = "s3"
	env["COMMONOPS_S3_ENDPOINT"] = s.Endpoint
	env["COMMONOPS_S3_BUCKET"] = s.Bucket
	env["COMMONOPS_S3_REGION"] = s.Region
	env["COMMONOPS_S3_ACCESS_KEY"] = s.AccessKey
	env["COMMONOPS_S3_SECRET_KEY"] = s.SecretKey
	return env
}
