package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// instance is commonops running in-process through run, as main runs it.
type instance struct {
	base string
	logs *syncBuffer
	stop func() error
}

// syncBuffer collects the JSON log lines and signals the start-up line.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	started chan string
	once    sync.Once
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "commonops started" {
			b.once.Do(func() { b.started <- line.Addr })
		}
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs commonops with env (on top of a fresh data directory and port 0)
// and waits until it serves.
func start(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	// The tests run many processes side by side on one PostgreSQL: each
	// opens and warms a few connections at start, not the default 32.
	full := map[string]string{"COMMONOPS_ADDR": "127.0.0.1:0", "COMMONOPS_DATA_DIR": t.TempDir(), "COMMONOPS_LOG_LEVEL": "info",
		"COMMONOPS_DB_WARM_CONNS": "4"}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{started: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), func(k string) string { return full[k] }, logs, logs)
	}()
	inst := &instance{logs: logs}
	var once sync.Once
	var stopErr error
	inst.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("run did not return within 30s of cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := inst.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("service log:\n%s", logs.String())
		}
	})
	select {
	case addr := <-logs.started:
		inst.base = "http://" + addr
	case err := <-done:
		t.Fatalf("run returned before serving: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no start-up line within 60s:\n%s", logs.String())
	}
	return inst
}

const tenant = "e2e"

// call sends a JSON request to the API and decodes the answer into out.
func (in *instance) call(t *testing.T, method, path string, body any, wantStatus int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.base+"/api/v1/operations"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tenant-Id", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: got %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

type task struct {
	ID             string  `json:"id"`
	Status         string  `json:"status"`
	UploadStatus   string  `json:"uploadStatus"`
	OutputFileName *string `json:"outputFileName"`
	ErrorMessage   *string `json:"errorMessage"`
	ProcessedItems int64   `json:"processedItems"`
	Attempt        int     `json:"attempt"`
}

type created struct {
	Task          task              `json:"task"`
	UploadURL     string            `json:"uploadUrl"`
	UploadMethod  string            `json:"uploadMethod"`
	UploadHeaders map[string]string `json:"uploadHeaders"`
}

// waitStatus polls the task until it reaches status or the deadline passes.
func (in *instance) waitStatus(t *testing.T, id, status string, within time.Duration) task {
	t.Helper()
	deadline := time.Now().Add(within)
	var got task
	for {
		in.call(t, http.MethodGet, "/tasks/"+id, nil, http.StatusOK, &got)
		if got.Status == status {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: got status %s (error %v), want %s within %s", id, got.Status, got.ErrorMessage, status, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// upload PUTs body to a pre-signed URL exactly as a client would.
func upload(t *testing.T, c created, body []byte) {
	t.Helper()
	req, err := http.NewRequest(c.UploadMethod, c.UploadURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.UploadHeaders {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload: got %d %s", resp.StatusCode, b)
	}
}

// download fetches a task file through its signed URL.
func (in *instance) download(t *testing.T, id, file string) []byte {
	t.Helper()
	var d struct {
		DownloadURL string `json:"downloadUrl"`
		FileName    string `json:"fileName"`
	}
	in.call(t, http.MethodGet, "/tasks/"+id+"/download?file="+file, nil, http.StatusOK, &d)
	return fetch(t, d.DownloadURL, file+" of "+id)
}

// fetch GETs a signed download URL and returns the body; anything but a
// 200 fails the test, naming what.
func fetch(t *testing.T, url, what string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download %s: got %d %s, want 200", what, resp.StatusCode, b)
	}
	return b
}

// The embedded default: no flags, no services. A task runs from create to
// completed, a file goes up through the signed URL and starts its task by
// itself, the built-in export produces a file, and SIGTERM-style
// cancellation shuts down cleanly.
func TestEmbeddedDefault(t *testing.T) {
	in := start(t, nil)

	var c created
	in.call(t, http.MethodPost, "/tasks", map[string]any{"taskType": "noop", "entityType": "demo"}, http.StatusCreated, &c)
	in.waitStatus(t, c.Task.ID, "completed", 10*time.Second)

	// A task with an input file waits for it, then runs without any further call.
	input := []byte("sku,name\nA-1,shoe\n")
	var withFile created
	in.call(t, http.MethodPost, "/tasks", map[string]any{"taskType": "noop", "entityType": "demo", "fileName": "in.csv", "fileSize": len(input)}, http.StatusCreated, &withFile)
	if withFile.Task.UploadStatus != "awaiting" || withFile.UploadURL == "" {
		t.Fatalf("got uploadStatus %q url %q, want awaiting with an upload URL", withFile.Task.UploadStatus, withFile.UploadURL)
	}
	upload(t, withFile, input)
	in.waitStatus(t, withFile.Task.ID, "completed", 10*time.Second)
	if got := in.download(t, withFile.Task.ID, "input"); !bytes.Equal(got, input) {
		t.Fatalf("input download: got %q, want %q", got, input)
	}

	// The built-in export of the service's own tasks works with no config.
	var export created
	in.call(t, http.MethodPost, "/tasks", map[string]any{"taskType": "export", "entityType": "task", "params": map[string]any{"format": "csv"}}, http.StatusCreated, &export)
	done := in.waitStatus(t, export.Task.ID, "completed", 20*time.Second)
	if done.OutputFileName == nil {
		t.Fatalf("export completed without an output file")
	}
	csv := string(in.download(t, export.Task.ID, "output"))
	if !strings.Contains(csv, c.Task.ID) || !strings.Contains(csv, withFile.Task.ID) {
		t.Fatalf("export output lacks the earlier tasks:\n%s", csv)
	}

	// An open event stream (of a task scheduled for tomorrow) does not hold
	// up a graceful shutdown.
	var later created
	in.call(t, http.MethodPost, "/tasks", map[string]any{"taskType": "noop", "entityType": "demo", "scheduledAt": time.Now().Add(24 * time.Hour)}, http.StatusCreated, &later)
	req, _ := http.NewRequest(http.MethodGet, in.base+"/api/v1/operations/tasks/"+later.Task.ID+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Tenant-Id", tenant)
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != http.StatusOK {
		t.Fatalf("open event stream: %v %v", err, stream)
	}
	defer stream.Body.Close()
	first := make([]byte, 256)
	if n, err := stream.Body.Read(first); err != nil || !strings.Contains(string(first[:n]), "retry:") {
		t.Fatalf("event stream start: got %q %v", first[:n], err)
	}
	stopped := time.Now()
	if err := in.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if d := time.Since(stopped); d > 5*time.Second {
		t.Fatalf("shutdown with an open event stream took %s, want under 5s", d)
	}
	if !strings.Contains(in.logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean shutdown in the log:\n%s", in.logs.String())
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown role", []string{"serve", "--roles", "api,cook"}, nil, `unknown role "cook"`},
		{"bad duration in env", []string{"serve"}, map[string]string{"COMMONOPS_LEASE": "soon"}, "COMMONOPS_LEASE"},
		{"s3 without endpoint", []string{"serve", "--storage", "s3"}, nil, "COMMONOPS_S3_ENDPOINT"},
		{"bad type concurrency", []string{"serve", "--worker-type-concurrency", "import=two"}, nil, `import=two`},
		{"CORS origin with a wildcard", []string{"serve", "--storage", "s3", "--s3-endpoint", "127.0.0.1:9", "--s3-cors-origins", "https://*.example.com"}, nil, `s3-cors-origins: origin "https://*.example.com"`},
		{"CORS origins on the local store", []string{"serve"}, map[string]string{"COMMONOPS_S3_CORS_ORIGINS": "https://ops.example.com"}, "s3-cors-origins: wants storage s3"},
		{"Dapr topics on the embedded bus", []string{"serve", "--dapr-topics", "created,retried,cancelled"}, nil, "dapr-topics: wants pubsub dapr"},
		{"Dapr topics without the worker's", []string{"serve", "--pubsub", "dapr", "--dapr-topics", "created,completed"}, nil, "dapr-topics: the list lacks retried, cancelled"},
		{"unknown Dapr topic", []string{"serve", "--pubsub", "dapr"}, map[string]string{"COMMONOPS_DAPR_TOPICS": "created,retried,cancelled,done"}, `dapr-topics: unknown topic "done"`},
		{"unknown command", []string{"cook"}, nil, `unknown command "cook"`},
		{"bad fair half-life", []string{"serve", "--fair-half-life", "never"}, nil, `want a duration such as 2s, or off, got "never"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// The README's configuration table is the one the code prints.
func TestReadmeConfigTable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "--markdown"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	readmeBytes, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(readmeBytes)
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.Contains(readme, line) {
			t.Errorf("README lacks the configuration line:\n%s\n(run `go run ./cmd/commonops config --markdown` and paste the table)", line)
		}
	}
}

// commonops config shows the settings in force, where each came from, and
// masks secrets.
func TestConfigShowsEffectiveSettings(t *testing.T) {
	env := map[string]string{
		"COMMONOPS_DATABASE_URL":   "postgres://app:hunter2@db:5432/ops?sslmode=disable",
		"COMMONOPS_S3_SECRET_KEY":  "s3cr3t-value",
		"COMMONOPS_LEASE":          "45s",
		"COMMONOPS_FAIR_HALF_LIFE": "0s", // 0 is off, not the default
		"APP_API_TOKEN":            "dapr-token-value",
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"config", "--shutdown-timeout", "2s"}, func(k string) string { return env[k] }, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| `--shutdown-timeout` | `COMMONOPS_SHUTDOWN_TIMEOUT` | `2s` | flag | `30s` |",
		"| `--lease` | `COMMONOPS_LEASE` | `45s` | environment | `30s` |",
		"| `--fair-half-life` | `COMMONOPS_FAIR_HALF_LIFE` | `off` | environment | `2s` |",
		"| `--retention-completed` | `COMMONOPS_RETENTION_COMPLETED` | `720h` | default | `720h` |",
		"`postgres://app:****@db:5432/ops?sslmode=disable` | environment",
		"| `--s3-secret-key` | `COMMONOPS_S3_SECRET_KEY` | `****` | environment |",
		"| — | `APP_API_TOKEN` | set | environment | — |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config output lacks %q:\n%s", want, got)
		}
	}
	for _, secret := range []string{"hunter2", "s3cr3t-value", "dapr-token-value"} {
		if strings.Contains(got, secret) {
			t.Errorf("config output shows the secret %q:\n%s", secret, got)
		}
	}
}

// serve -h names the default of every setting that has one.
func TestServeHelpShowsDefaults(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "-h"}, func(string) string { return "" }, &out, &out)
	if err == nil {
		t.Fatal("serve -h: got no error, want flag.ErrHelp")
	}
	help := out.String()
	for _, s := range (&options{}).settings() {
		if s.def == "" || s.def == "false" {
			continue // the flag package shows no zero default
		}
		if want := fmt.Sprintf("(default %s)", s.def); !strings.Contains(help, "-"+s.flag) || !strings.Contains(help, want) {
			t.Errorf("serve -h lacks --%s with %s", s.flag, want)
		}
	}
}
