package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// TestProcessorTextMadeStorable has a processor log a line, report a
// message and fail with an error that hold NULs or bad UTF-8 and are too
// long, cut in the middle of a character: all must be stored, cleaned, and
// the failure recorded at once.
func TestProcessorTextMadeStorable(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		svc := newService(t, s, 30*time.Second)
		// NULs are removed before the cut: the é would fit without them, but
		// the error is one byte too long even so, and loses the é.
		logMsg := "nul\x00bad\xff" + strings.Repeat("b", operations.MaxLogMessageLen-10) + "é"
		errMsg := "bad\x00" + strings.Repeat("a", commonops.MaxMessageLen-4) + "é"
		reg := worker.NewRegistry()
		reg.Register("messy", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			job.Log(commonops.LogWarn, logMsg, nil)
			job.Report(worker.Update{Message: ptr(errMsg)})
			return errors.New(errMsg)
		}))
		startPool(t, ctx, svc, reg, nil)
		task := create(t, svc, commonops.CreateInput{TaskType: "messy", EntityType: "x", MaxRetries: ptr(0)})
		final := waitStatus(t, svc, task.ID, commonops.StatusFailed, 5*time.Second)
		wantErr := "bad" + strings.Repeat("a", commonops.MaxMessageLen-4)
		if got := deref(final.ErrorMessage); got != wantErr {
			t.Errorf("got errorMessage of %d bytes, want the %d bytes before the cut é without NUL", len(got.(string)), len(wantErr))
		}
		if got := deref(final.Message); got != wantErr {
			t.Errorf("got message %v, want the cleaned error text", got)
		}
		logs, _, err := svc.Logs(ctx, commonops.LogFilter{TenantID: tenant, TaskID: task.ID, Page: 1, PageSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		wantLog := "nulbad\uFFFD" + strings.Repeat("b", operations.MaxLogMessageLen-10)
		if len(logs) != 1 || logs[0].Message != wantLog {
			t.Fatalf("got %d log lines (%v), want one of %d bytes: NUL removed, bad byte replaced, cut before the é", len(logs), logs, len(wantLog))
		}
	})
}
