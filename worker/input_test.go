package worker_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/worker"
)

// putInput writes content as the task's input, as an upload would.
func putInput(t *testing.T, objs objectstore.Store, task *commonops.Task, content string) {
	t.Helper()
	w, err := objs.Create(context.Background(), objectstore.InputKey(task.ID, *task.FileName), "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, content)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestInputChangedAfterConfirmIsRefused: the input a processor reads is the
// file whose upload was confirmed. One written over it afterwards (on S3 a
// pre-signed PUT cannot be revoked) fails the task for good instead of
// being processed.
func TestInputChangedAfterConfirmIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newService(t, testdb.SQLite(t), 30*time.Second)
	var read atomic.Value
	reg := worker.NewRegistry()
	reg.Register("read", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
		r, err := job.Input(ctx)
		if err != nil {
			return err
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		read.Store(string(b))
		return nil
	}))

	task := create(t, svc, commonops.CreateInput{TaskType: "read", EntityType: "x", FileName: ptr("in.csv")})
	putInput(t, svc.Objects, task, "confirmed")
	if _, err := svc.ConfirmUpload(ctx, tenant, task.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a later modification time on coarse clocks
	putInput(t, svc.Objects, task, "written over")
	startPool(t, ctx, svc, reg, nil)
	got := waitStatus(t, svc, task.ID, commonops.StatusFailed, 10*time.Second)
	if got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, "changed after its upload was confirmed") || got.Attempt != 1 {
		t.Fatalf("got error %v on attempt %d, want the changed input refused for good on attempt 1", got.ErrorMessage, got.Attempt)
	}
	if v := read.Load(); v != nil {
		t.Fatalf("the processor read %q, want nothing", v)
	}
}
