package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/worker"
)

// taskServer is the stock server, in-process on port 0 on the embedded
// default, with three processors of the tests' own: "fail" fails for good,
// "chatty" logs a line, reports 50% and waits for release before its last
// line, and the built-in "noop" completes at once.
type taskServer struct {
	url     string
	release chan struct{}
}

func startTaskServer(t *testing.T) *taskServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"),
		ShutdownTimeout: time.Second, PollInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := &taskServer{url: a.URL(), release: make(chan struct{})}
	a.Register("fail", "*", worker.ProcessorFunc(func(context.Context, worker.Job) error {
		return worker.Permanent(errors.New("the supplier feed is gone"))
	}))
	a.Register("chatty", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
		half, total, done := 50.0, int64(2), int64(1)
		job.Log(commonops.LogInfo, "first line", nil)
		job.Report(worker.Update{Progress: &half, TotalItems: &total, ProcessedItems: &done})
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		job.Log(commonops.LogWarn, "last line", map[string]any{"row": 2})
		return nil
	}))
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return s
}

// cli runs `commonops task args...` through run against s, with env on top
// of an empty configuration directory, and returns its output.
func (s *taskServer) cli(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	full := map[string]string{"COMMONOPS_SERVER": s.url, "COMMONOPS_CONFIG_DIR": t.TempDir()}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err = run(ctx, append([]string{"task"}, args...), func(k string) string { return full[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

// must is cli that fails the test on an error.
func (s *taskServer) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := s.cli(t, nil, args...)
	if err != nil {
		t.Fatalf("task %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// jsonLines decodes each line of out into a T.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var all []T
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		all = append(all, v)
	}
	return all
}

// one decodes the single JSON line of out.
func one[T any](t *testing.T, out string) T {
	t.Helper()
	all := jsonLines[T](t, out)
	if len(all) != 1 {
		t.Fatalf("got %d JSON lines, want 1:\n%s", len(all), out)
	}
	return all[0]
}

// A file goes up through the signed URL, the task runs to completion under
// watch (exit 0), and the input comes back down byte for byte.
func TestTaskCreateFileWatchDownload(t *testing.T) {
	t.Parallel()
	s := startTaskServer(t)
	dir := t.TempDir()
	input := []byte("sku,name\nA-1,shoe\nA-2,boot\n")
	path := filepath.Join(dir, "products.csv")
	if err := os.WriteFile(path, input, 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := s.cli(t, nil, "create", "--type", "noop", "--entity", "demo", "--file", path, "--idempotency-key", "k-1")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, errOut)
	}
	created := one[commonops.Task](t, out)
	if created.FileName == nil || *created.FileName != "products.csv" || created.UploadStatus != commonops.UploadUploaded {
		t.Fatalf("got file %v upload %s, want products.csv uploaded", created.FileName, created.UploadStatus)
	}
	if strings.ContainsAny(errOut, "\r\x1b") {
		t.Fatalf("stderr off a terminal has control characters: %q", errOut)
	}

	// watch, as JSON Lines off a terminal: the events up to completed.
	out = s.must(t, "watch", created.ID)
	events := jsonLines[commonops.Event](t, out)
	if len(events) == 0 || events[len(events)-1].EventType != commonops.EventCompleted {
		t.Fatalf("watch events: got %s, want them to end with completed", out)
	}
	// The same in a table, and as the final task in JSON.
	if out := s.must(t, "watch", created.ID, "-o", "table"); !strings.Contains(out, "task "+created.ID+" completed") {
		t.Fatalf("watch -o table: got %q, want the completed summary", out)
	}
	if got := s.must(t, "watch", created.ID, "-o", "json"); !strings.Contains(got, `"status": "completed"`) {
		t.Fatalf("watch -o json: got %s, want the completed task", got)
	}

	// The same idempotency key returns the same task.
	again := one[commonops.Task](t, s.must(t, "create", "--type", "noop", "--entity", "demo", "--idempotency-key", "k-2"))
	replay := one[commonops.Task](t, s.must(t, "create", "--type", "noop", "--entity", "demo", "--idempotency-key", "k-2"))
	if again.ID != replay.ID {
		t.Fatalf("idempotent create: got %s then %s, want the same task", again.ID, replay.ID)
	}

	to := filepath.Join(dir, "back.csv")
	got := one[map[string]any](t, s.must(t, "download", created.ID, "--file", "input", "--out", to))
	if got["path"] != to || got["bytes"] != float64(len(input)) {
		t.Fatalf("download: got %v, want path %s and %d bytes", got, to, len(input))
	}
	if b, _ := os.ReadFile(to); !bytes.Equal(b, input) {
		t.Fatalf("downloaded file: got %q, want %q", b, input)
	}
	if out := s.must(t, "download", created.ID, "--file", "input", "--out", "-"); out != string(input) {
		t.Fatalf("download to stdout: got %q, want %q", out, input)
	}
}

// watch sees a failing task through to its end and exits non-zero with
// the error; --exit-status=false exits 0; retry runs it again.
func TestTaskWatchFailure(t *testing.T) {
	t.Parallel()
	s := startTaskServer(t)
	created := one[commonops.Task](t, s.must(t, "create", "--type", "fail", "--entity", "demo"))

	out, _, err := s.cli(t, nil, "watch", created.ID)
	if !errors.Is(err, errTaskUnsuccessful) || !strings.Contains(err.Error(), "failed: the supplier feed is gone") {
		t.Fatalf("watch of a failing task: got %v, want a failed error with the task's message", err)
	}
	if events := jsonLines[commonops.Event](t, out); events[len(events)-1].EventType != commonops.EventFailed {
		t.Fatalf("watch events: got %s, want them to end with failed", out)
	}
	if _, _, err := s.cli(t, nil, "watch", created.ID, "--exit-status=false"); err != nil {
		t.Fatalf("watch --exit-status=false: got %v, want no error", err)
	}

	retried := one[commonops.Task](t, s.must(t, "retry", created.ID))
	if retried.Status != commonops.StatusPending || retried.RetryCount != 1 {
		t.Fatalf("retry: got %s with retryCount %d, want pending with 1", retried.Status, retried.RetryCount)
	}
	if _, _, err := s.cli(t, nil, "watch", created.ID); !errors.Is(err, errTaskUnsuccessful) {
		t.Fatalf("watch of the retried task: got %v, want it to fail again", err)
	}
}

// list and get in each format; list pages by cursor; cancel and delete.
func TestTaskListGetCancel(t *testing.T) {
	t.Parallel()
	s := startTaskServer(t)
	tomorrow := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	var ids []string
	for range 3 {
		ids = append(ids, one[commonops.Task](t, s.must(t, "create", "--type", "noop", "--entity", "shelf", "--scheduled-at", tomorrow, "--params", `{"n":1}`)).ID)
	}

	tests := []struct {
		name   string
		args   []string
		decode func(string) []commonops.Task
	}{
		{"jsonl", []string{"-o", "jsonl"}, func(out string) []commonops.Task { return jsonLines[commonops.Task](t, out) }},
		{"default off a terminal", nil, func(out string) []commonops.Task { return jsonLines[commonops.Task](t, out) }},
		{"json", []string{"-o", "json"}, func(out string) []commonops.Task {
			var ts []commonops.Task
			if err := json.Unmarshal([]byte(out), &ts); err != nil {
				t.Fatalf("list -o json: %v\n%s", err, out)
			}
			return ts
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.decode(s.must(t, append([]string{"list", "--entity", "shelf", "--status", "scheduled"}, tc.args...)...))
			if len(got) != 3 || got[0].ID != ids[2] {
				t.Fatalf("got %d tasks, first %v, want 3 newest first (%s)", len(got), got, ids[2])
			}
		})
	}
	table := s.must(t, "list", "--entity", "shelf", "-o", "table")
	if !strings.HasPrefix(table, "ID ") || strings.Count(table, "scheduled") != 3 || strings.Contains(table, "\x1b") {
		t.Fatalf("list -o table: got\n%s\nwant a header and 3 scheduled rows without colour", table)
	}

	out, errOut, err := s.cli(t, nil, "list", "--entity", "shelf", "--limit", "2")
	if err != nil || len(jsonLines[commonops.Task](t, out)) != 2 || !strings.Contains(errOut, "--cursor ") {
		t.Fatalf("list --limit 2: got %v, %q, stderr %q, want 2 tasks and the next cursor", err, out, errOut)
	}
	if all := jsonLines[commonops.Task](t, s.must(t, "list", "--entity", "shelf", "--limit", "2", "--all")); len(all) != 3 {
		t.Fatalf("list --all: got %d tasks, want 3", len(all))
	}

	if got := one[commonops.Task](t, s.must(t, "get", ids[0])); got.ID != ids[0] || string(got.Params) != `{"n":1}` {
		t.Fatalf("get: got %s params %s, want %s with its params", got.ID, got.Params, ids[0])
	}
	detail := s.must(t, "get", "-o", "table", ids[0])
	if !strings.Contains(detail, "Status:") || !strings.Contains(detail, "scheduled") {
		t.Fatalf("get -o table: got\n%s", detail)
	}
	var fromJSON commonops.Task
	if err := json.Unmarshal([]byte(s.must(t, "get", ids[0], "-o", "json")), &fromJSON); err != nil || fromJSON.ID != ids[0] {
		t.Fatalf("get -o json: got %v %v, want task %s", fromJSON.ID, err, ids[0])
	}

	if got := one[commonops.Task](t, s.must(t, "cancel", ids[1])); got.Status != commonops.StatusCancelled {
		t.Fatalf("cancel: got %s, want cancelled", got.Status)
	}
	if _, _, err := s.cli(t, nil, "watch", ids[1]); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("watch of a cancelled task: got %v, want a cancelled error", err)
	}
	s.must(t, "delete", ids[1])
	_, _, err = s.cli(t, nil, "get", ids[1])
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("get of a deleted task: got %v, want one line with 404", err)
	}
}

// logs -f follows a running task's log until it ends; events lists its
// history and events -f ends with the task.
func TestTaskLogsAndEvents(t *testing.T) {
	t.Parallel()
	s := startTaskServer(t)
	id := one[commonops.Task](t, s.must(t, "create", "--type", "chatty", "--entity", "demo")).ID

	type result struct {
		out string
		err error
	}
	followed := make(chan result, 1)
	go func() {
		out, _, err := s.cli(t, nil, "logs", "-f", id, "-o", "table")
		followed <- result{out, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		logs := s.must(t, "logs", id)
		if strings.Contains(logs, "first line") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no first log line within 10s: %q", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case r := <-followed:
		t.Fatalf("logs -f returned before the task ended: %q %v", r.out, r.err)
	default:
	}
	close(s.release)
	r := <-followed
	if r.err != nil || !strings.Contains(r.out, "INFO") || !strings.Contains(r.out, "first line") ||
		!strings.Contains(r.out, "WARN") || !strings.Contains(r.out, `last line`) {
		t.Fatalf("logs -f: got %q %v, want both lines", r.out, r.err)
	}

	logs := jsonLines[commonops.LogEntry](t, s.must(t, "logs", id, "--level", "warn"))
	if len(logs) != 1 || logs[0].Message != "last line" {
		t.Fatalf("logs --level warn: got %v, want the last line alone", logs)
	}

	var kinds []string
	for _, e := range jsonLines[commonops.Event](t, s.must(t, "events", id)) {
		kinds = append(kinds, e.EventType)
	}
	if got := strings.Join(kinds, " "); got != "created started progress completed" {
		t.Fatalf("events: got %q, want created started progress completed", got)
	}
	followedEvents := jsonLines[commonops.Event](t, s.must(t, "events", "-f", id, "-o", "json"))
	if len(followedEvents) != len(kinds) {
		t.Fatalf("events -f: got %d events, want %d", len(followedEvents), len(kinds))
	}
	table := s.must(t, "events", id, "-o", "table")
	if !strings.Contains(table, "pending → processing") {
		t.Fatalf("events -o table: got\n%s\nwant the status changes", table)
	}
}

// The server, token and tenant come from flags over the environment over
// a profile; API problems are one clear line; the token is never printed.
func TestTaskIdentityAndErrors(t *testing.T) {
	t.Parallel()
	s := startTaskServer(t)
	dir := t.TempDir()
	profiles := "default: local\nprofiles:\n  local: {server: " + s.url + ", tenant: acme, token: s3cret-token}\n  nowhere: {server: http://127.0.0.1:1}\n"
	if err := os.WriteFile(filepath.Join(dir, ProfilesFile), []byte(profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COMMONOPS_SERVER": "", "COMMONOPS_CONFIG_DIR": dir}

	// The default profile: server and tenant.
	out, errOut, err := s.cli(t, env, "create", "--type", "noop", "--entity", "demo")
	if err != nil {
		t.Fatalf("create through the default profile: %v %s", err, errOut)
	}
	if got := one[commonops.Task](t, out); got.TenantID != "acme" {
		t.Fatalf("got tenant %q, want acme", got.TenantID)
	}
	if strings.Contains(out+errOut, "s3cret-token") {
		t.Fatalf("the token was printed: %s %s", out, errOut)
	}
	// The tenant of the profile, over the flag's absence; a flag wins.
	count := func(extra map[string]string, args ...string) int {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		for k, v := range extra {
			e[k] = v
		}
		out, errOut, err := s.cli(t, e, append([]string{"list"}, args...)...)
		if err != nil {
			t.Fatalf("list %v: %v %s", args, err, errOut)
		}
		return len(jsonLines[commonops.Task](t, out))
	}
	if n := count(nil); n != 1 {
		t.Fatalf("list in the profile's tenant: got %d tasks, want 1", n)
	}
	if n := count(nil, "--tenant", "other"); n != 0 {
		t.Fatalf("list --tenant other: got %d tasks, want 0", n)
	}
	if n := count(map[string]string{"COMMONOPS_TENANT": "other"}); n != 0 {
		t.Fatalf("list with COMMONOPS_TENANT=other: got %d tasks, want 0", n)
	}
	if n := count(map[string]string{"COMMONOPS_TENANT": "other"}, "--tenant", "acme"); n != 1 {
		t.Fatalf("--tenant over COMMONOPS_TENANT: got %d tasks, want 1", n)
	}
	// A profile that points nowhere fails; --server over it works.
	if _, _, err := s.cli(t, env, "list", "--profile", "nowhere"); err == nil {
		t.Fatalf("list --profile nowhere: got no error, want a connection error")
	}
	if n := count(map[string]string{"COMMONOPS_PROFILE": "nowhere"}, "--server", s.url, "--tenant", "acme"); n != 1 {
		t.Fatalf("--server over the profile: got %d tasks, want 1", n)
	}
	if _, _, err := s.cli(t, env, "list", "--profile", "missing"); err == nil || !strings.Contains(err.Error(), `profile "missing"`) {
		t.Fatalf("an unknown profile: got %v, want an error naming it", err)
	}

	errs := []struct {
		name string
		args []string
		want string
	}{
		{"a field error", []string{"create", "--type", "noop", "--entity", "bad name"}, "task create: 422 Unprocessable Entity: "},
		{"a missing flag", []string{"create", "--type", "noop"}, "--type and --entity are required"},
		{"a bad id", []string{"get", "not-a-uuid"}, "task get: 400 Bad Request: "},
		{"a bad format", []string{"list", "-o", "yaml"}, `-o "yaml"`},
		{"an unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.cli(t, nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line containing %q", err, tc.want)
			}
		})
	}
	_, _, err = s.cli(t, nil, "create", "--type", "noop", "--entity", "bad name")
	if !strings.Contains(err.Error(), "entityType: ") {
		t.Fatalf("got %v, want the field error on entityType", err)
	}
}

// Off a terminal there is no bar and the default is JSON Lines; a bar on a
// terminal redraws one line and ends it.
func TestTaskTerminalOutput(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p, err := newPrinter("", &buf)
	if err != nil || p.format != formatJSONL || p.color {
		t.Fatalf("printer of a buffer: got %+v %v, want jsonl without colour", p, err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatalf("a regular file: got a terminal, want none")
	}
	off := newBar(&buf)
	off.draw(0.5, "half")
	off.done()
	if buf.Len() != 0 {
		t.Fatalf("bar off a terminal: got %q, want nothing", buf.String())
	}
	on := &bar{w: &buf, on: true}
	on.draw(0.5, "half")
	on.clear()
	on.draw(1, "all")
	on.done()
	if want := "\r\x1b[K[" + strings.Repeat("#", 15) + strings.Repeat("-", 15) + "]  50% half\r\x1b[K\r\x1b[K[" + strings.Repeat("#", 30) + "] 100% all\n"; buf.String() != want {
		t.Fatalf("bar: got %q, want %q", buf.String(), want)
	}
	if got := (printer{color: true}).status(commonops.StatusFailed); got != "\x1b[31mfailed\x1b[0m" {
		t.Fatalf("coloured status: got %q", got)
	}
	var usage bytes.Buffer
	if err := run(context.Background(), []string{"task", "--help"}, func(string) string { return "" }, &usage, io.Discard); err != nil || !strings.Contains(usage.String(), "watch ") {
		t.Fatalf("task --help: got %v %q, want the command list", err, usage.String())
	}
}

func TestTaskCreateBatch(t *testing.T) {
	t.Parallel()
	s := startTaskServer(t)
	tomorrow := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	file := filepath.Join(t.TempDir(), "tasks.jsonl")
	lines := fmt.Sprintf(`{"taskType": "noop", "entityType": "rack", "scheduledAt": %[1]q, "idempotencyKey": "r-1"}

{"taskType": "noop", "entityType": "rack", "scheduledAt": %[1]q, "priority": 5}
{"taskType": "noop", "scheduledAt": %[1]q}
`, tomorrow)
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := s.cli(t, nil, "create", "--batch", file)
	if err == nil || !strings.Contains(err.Error(), "1 of the batch's items were refused") {
		t.Fatalf("create --batch with a refused item: got err %v, want one refused", err)
	}
	type line struct {
		Line   int    `json:"line"`
		Status int    `json:"status"`
		ID     string `json:"id"`
	}
	got := jsonLines[line](t, out)
	if len(got) != 3 || got[0].Line != 1 || got[0].Status != 201 || got[0].ID == "" || got[1].Line != 3 || got[1].Status != 201 || got[2].Line != 4 || got[2].Status != 422 {
		t.Fatalf("create --batch: got %+v, want lines 1 and 3 created, 4 refused (422)", got)
	}
	listed := jsonLines[commonops.Task](t, s.must(t, "list", "--entity", "rack"))
	if len(listed) != 2 {
		t.Fatalf("tasks of the batch: got %d, want 2", len(listed))
	}
	// The keyed line answers its task again.
	if err := os.WriteFile(file, []byte(strings.SplitN(lines, "\n", 2)[0]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	again := jsonLines[line](t, s.must(t, "create", "--batch", file))
	if len(again) != 1 || again[0].ID != got[0].ID {
		t.Fatalf("create --batch again: got %+v, want task %s again", again, got[0].ID)
	}
}
