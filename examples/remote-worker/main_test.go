package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/httpapi"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
)

// TestRunOneTask runs the example against the real API (SQLite, local
// files): it reads the input through its download URL, uploads its report
// and completes the task.
func TestRunOneTask(t *testing.T) {
	ctx := context.Background()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	objs, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: t.TempDir(), BaseURL: srv.URL, Secret: []byte("example-test-secret-0123456789ab")})
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &operations.Service{Store: testdb.SQLite(t), Objects: objs}
	h = httpapi.NewServer(httpapi.Config{Service: svc, Files: objs.Handler(), Logger: log})

	name := "lines.txt"
	c, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant, Input: commonops.CreateInput{TaskType: "count-lines", EntityType: "report", FileName: &name}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := objs.Create(ctx, objectstore.InputKey(c.Task.ID, name), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "a\nbb\nccc\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ConfirmUpload(ctx, commonops.DefaultTenant, c.Task.ID); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	if err := run(ctx, []string{"-server", srv.URL, "-task", c.Task.ID, "-worker-id", "example"}, func(string) string { return "" }, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	task, err := svc.Get(ctx, commonops.DefaultTenant, c.Task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if task.Status != commonops.StatusCompleted || task.ProcessedItems != 3 || task.OutputFileName == nil || task.OutputObject == nil {
		t.Fatalf("got %s, %d processed, output %v at %v; want completed, 3, a file", task.Status, task.ProcessedItems, task.OutputFileName, task.OutputObject)
	}
	// The output URL of attempt 1 put it under that attempt's key.
	if want := objectstore.AttemptOutputKey(task.ID, 1, *task.OutputFileName); *task.OutputObject != want {
		t.Errorf("got output object %s, want %s", *task.OutputObject, want)
	}
	r, err := objs.Open(ctx, *task.OutputObject)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if want := "line,length\n1,1\n2,2\n3,3\n"; string(b) != want {
		t.Fatalf("got report %q, want %q", b, want)
	}
	if !strings.Contains(stderr.String(), "completed") {
		t.Errorf("got log %q, want a completed line", stderr.String())
	}
}
