package operations_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

const tenant = "tenant-ops"

// now is the service's clock in these tests: fixed, microsecond-aligned.
var now = time.Date(2030, 3, 4, 5, 6, 7, 123456000, time.UTC)

func ptr[T any](v T) *T { return &v }

// each runs fn, in parallel subtests, on a Service over every store driver
// and a local object store of its own.
func each(t *testing.T, fn func(t *testing.T, svc *operations.Service)) {
	t.Helper()
	testdb.Each(t, func(t *testing.T, st store.Store) {
		t.Parallel()
		objects, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("open local object store: %v", err)
		}
		t.Cleanup(func() { objects.Close() })
		fn(t, &operations.Service{
			Store: st, Objects: objects,
			Now:  func() time.Time { return now },
			Rand: func() float64 { return 0 },
		})
	})
}

// create stores a task of tenant made from in.
func create(t *testing.T, svc *operations.Service, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	if in.TaskType == "" {
		in.TaskType = "import"
	}
	if in.EntityType == "" {
		in.EntityType = "product"
	}
	c, _, err := svc.Create(context.Background(), operations.CreateRequest{TenantID: tenant, Requester: "alice", Input: in})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c.Task
}

// claim claims a pending task for worker w.
func claim(t *testing.T, svc *operations.Service, id string) *commonops.Task {
	t.Helper()
	tk, err := svc.Claim(context.Background(), tenant, id, "w", 0)
	if err != nil {
		t.Fatalf("Claim %s: %v", id, err)
	}
	return tk
}

// put stores an object of size bytes under key.
func put(t *testing.T, svc *operations.Service, key string, size int) {
	t.Helper()
	w, err := svc.Objects.Create(context.Background(), key, "text/csv")
	if err != nil {
		t.Fatalf("create object %s: %v", key, err)
	}
	if _, err := w.Write([]byte(strings.Repeat("x", size))); err != nil {
		t.Fatalf("write object %s: %v", key, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close object %s: %v", key, err)
	}
}

// wantErr fails unless err has code and, for a field, names it.
func wantErr(t *testing.T, err error, code, field string) {
	t.Helper()
	if got := commonops.ErrorCode(err); got != code {
		t.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
	if field == "" {
		return
	}
	var e *commonops.Error
	errors.As(err, &e)
	var fields []string
	for _, f := range e.Fields {
		fields = append(fields, f.Field)
	}
	if !slices.Contains(fields, field) {
		t.Fatalf("got error fields %v, want one naming %q", fields, field)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		t.Run("Invalid", func(t *testing.T) {
			for _, c := range []struct {
				name  string
				in    commonops.CreateInput
				key   string
				code  string
				field string
			}{
				{"missing taskType", commonops.CreateInput{EntityType: "product"}, "", commonops.EINVALID, "taskType"},
				{"priority out of range", commonops.CreateInput{TaskType: "import", EntityType: "product", Priority: ptr(5000)}, "", commonops.EINVALID, "priority"},
				{"fileSize without fileName", commonops.CreateInput{TaskType: "import", EntityType: "product", FileSize: ptr(int64(3))}, "", commonops.EINVALID, "fileSize"},
				{"over-long idempotency key", commonops.CreateInput{TaskType: "import", EntityType: "product"}, strings.Repeat("k", operations.MaxIdempotencyKeyLen+1), commonops.EINVALID, "Idempotency-Key"},
			} {
				t.Run(c.name, func(t *testing.T) {
					_, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, Input: c.in, IdempotencyKey: c.key})
					wantErr(t, err, c.code, c.field)
				})
			}
		})
		t.Run("WithFileHandsOutUploadURL", func(t *testing.T) {
			c, replayed, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, Requester: "alice", Input: commonops.CreateInput{TaskType: "import", EntityType: "product", FileName: ptr("dir/in.csv")}})
			if err != nil || replayed {
				t.Fatalf("Create: got replayed %v err %v, want false nil", replayed, err)
			}
			if c.UploadURL == nil || c.UploadExpiresAt == nil || c.Task.FileName == nil || *c.Task.FileName != "in.csv" || c.Task.UploadStatus != commonops.UploadAwaiting {
				t.Fatalf("got url %v expires %v fileName %v upload %s, want a URL for in.csv awaiting", c.UploadURL, c.UploadExpiresAt, c.Task.FileName, c.Task.UploadStatus)
			}
			if c.Task.RequestedBy != "alice" || c.Task.TenantID != tenant {
				t.Fatalf("got requestedBy %q tenant %q, want alice %q", c.Task.RequestedBy, c.Task.TenantID, tenant)
			}
		})
		t.Run("IdempotencyReplayAndMismatch", func(t *testing.T) {
			req := operations.CreateRequest{TenantID: tenant, Input: commonops.CreateInput{TaskType: "import", EntityType: "product"}, IdempotencyKey: "key-1", RequestHash: "hash-1"}
			first, replayed, err := svc.Create(ctx, req)
			if err != nil || replayed {
				t.Fatalf("first Create: got replayed %v err %v, want false nil", replayed, err)
			}
			again, replayed, err := svc.Create(ctx, req)
			if err != nil || !replayed {
				t.Fatalf("repeated Create: got replayed %v err %v, want true nil", replayed, err)
			}
			if again.Task.ID != first.Task.ID || !again.Task.CreatedAt.Equal(first.Task.CreatedAt) {
				t.Fatalf("replay: got task %s created %v, want %s created %v", again.Task.ID, again.Task.CreatedAt, first.Task.ID, first.Task.CreatedAt)
			}
			req.RequestHash = "hash-2"
			_, _, err = svc.Create(ctx, req)
			wantErr(t, err, commonops.EINVALID, "Idempotency-Key")
		})
	})
}

func TestGetAndList(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		a := create(t, svc, commonops.CreateInput{TaskType: "import"})
		b := create(t, svc, commonops.CreateInput{TaskType: "export"})
		t.Run("Get", func(t *testing.T) {
			got, err := svc.Get(ctx, tenant, a.ID)
			if err != nil || got.ID != a.ID || got.TaskType != "import" {
				t.Fatalf("Get: got %v, err %v; want task %s", got, err, a.ID)
			}
			_, err = svc.Get(ctx, "another-tenant", a.ID)
			wantErr(t, err, commonops.ENOTFOUND, "")
		})
		t.Run("List", func(t *testing.T) {
			got, total, err := svc.List(ctx, commonops.ListFilter{TenantID: tenant, TaskType: "export"})
			if err != nil || total != 1 || len(got) != 1 || got[0].ID != b.ID {
				t.Fatalf("List of exports: got %d tasks (total %d, err %v), want [%s]", len(got), total, err, b.ID)
			}
			_, total, err = svc.List(ctx, commonops.ListFilter{TenantID: tenant, PageSize: commonops.PageSizeMax})
			if err != nil || total != 2 {
				t.Fatalf("List of all: got total %d err %v, want 2 nil", total, err)
			}
		})
		t.Run("ListBounds", func(t *testing.T) {
			start, end := now, now.Add(-time.Hour)
			for _, c := range []struct {
				name  string
				f     commonops.ListFilter
				field string
			}{
				{"pageSize over the maximum", commonops.ListFilter{PageSize: commonops.PageSizeMax + 1}, "pageSize"},
				{"negative pageSize", commonops.ListFilter{PageSize: -1}, "pageSize"},
				{"page over the maximum", commonops.ListFilter{Page: operations.MaxPage + 1}, "page"},
				{"over-long taskType", commonops.ListFilter{TaskType: strings.Repeat("t", commonops.MaxNameLen+1)}, "taskType"},
				{"over-long requestedBy", commonops.ListFilter{RequestedBy: strings.Repeat("r", commonops.MaxRequestedByLen+1)}, "requestedBy"},
				{"over-long search", commonops.ListFilter{Search: strings.Repeat("s", operations.MaxSearchLen+1)}, "search"},
				{"unknown status", commonops.ListFilter{Statuses: []commonops.Status{"running"}}, "status"},
				{"end before start", commonops.ListFilter{StartDate: &start, EndDate: &end}, "endDate"},
			} {
				t.Run(c.name, func(t *testing.T) {
					c.f.TenantID = tenant
					_, _, err := svc.List(ctx, c.f)
					wantErr(t, err, commonops.EINVALID, c.field)
				})
			}
		})
	})
}

func TestCancelRetryDelete(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := create(t, svc, commonops.CreateInput{})
		t.Run("DeleteRefusesRunning", func(t *testing.T) {
			wantErr(t, svc.Delete(ctx, tenant, tk.ID), commonops.ECONFLICT, "")
		})
		t.Run("Cancel", func(t *testing.T) {
			got, err := svc.Cancel(ctx, tenant, tk.ID)
			if err != nil || got.Status != commonops.StatusCancelled {
				t.Fatalf("Cancel: got %v err %v, want cancelled", got, err)
			}
			_, err = svc.Cancel(ctx, tenant, tk.ID)
			wantErr(t, err, commonops.ECONFLICT, "")
		})
		t.Run("Retry", func(t *testing.T) {
			got, err := svc.Retry(ctx, tenant, tk.ID, false)
			if err != nil || got.Status != commonops.StatusPending || got.RetryCount != 1 {
				t.Fatalf("Retry: got %v err %v, want pending with retryCount 1", got, err)
			}
			_, err = svc.Retry(ctx, tenant, tk.ID, false)
			wantErr(t, err, commonops.ECONFLICT, "")
		})
		t.Run("DeleteRemovesTaskAndFiles", func(t *testing.T) {
			if _, err := svc.Cancel(ctx, tenant, tk.ID); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			key := objectstore.OutputKey(tk.ID, "out.csv")
			put(t, svc, key, 3)
			if err := svc.Delete(ctx, tenant, tk.ID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			_, err := svc.Get(ctx, tenant, tk.ID)
			wantErr(t, err, commonops.ENOTFOUND, "")
			_, err = svc.Objects.Stat(ctx, key)
			wantErr(t, err, commonops.ENOTFOUND, "")
		})
	})
}

func TestConfirmUpload(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := create(t, svc, commonops.CreateInput{FileName: ptr("in.csv"), FileSize: ptr(int64(5))})
		key := objectstore.InputKey(tk.ID, "in.csv")
		t.Run("NotUploadedYet", func(t *testing.T) {
			_, err := svc.ConfirmUpload(ctx, tenant, tk.ID)
			wantErr(t, err, commonops.ECONFLICT, "")
		})
		t.Run("WrongSize", func(t *testing.T) {
			put(t, svc, key, 4)
			_, err := svc.ConfirmUpload(ctx, tenant, tk.ID)
			wantErr(t, err, commonops.ECONFLICT, "")
		})
		t.Run("Uploaded", func(t *testing.T) {
			put(t, svc, key, 5)
			got, err := svc.ConfirmUpload(ctx, tenant, tk.ID)
			if err != nil || got.UploadStatus != commonops.UploadUploaded || !got.Runnable(now) {
				t.Fatalf("ConfirmUpload: got %v err %v, want uploaded and runnable", got, err)
			}
		})
		t.Run("WithoutFile", func(t *testing.T) {
			plain := create(t, svc, commonops.CreateInput{})
			_, err := svc.ConfirmUpload(ctx, tenant, plain.ID)
			wantErr(t, err, commonops.ECONFLICT, "")
		})
		t.Run("LargerThanAnnounced", func(t *testing.T) {
			// The client's mismatch, not a file over the service's limit.
			small := create(t, svc, commonops.CreateInput{FileName: ptr("in.csv"), FileSize: ptr(int64(0))})
			put(t, svc, objectstore.InputKey(small.ID, "in.csv"), 1)
			_, err := svc.ConfirmUpload(ctx, tenant, small.ID)
			wantErr(t, err, commonops.ECONFLICT, "")
			if !strings.Contains(commonops.ErrorMessage(err), "fileSize announced 0") {
				t.Errorf("got %q, want the announced size named", commonops.ErrorMessage(err))
			}
		})
		t.Run("OverTheLimit", func(t *testing.T) {
			limited := *svc
			limited.Limits.MaxFileSize = 10
			big := create(t, &limited, commonops.CreateInput{FileName: ptr("in.csv")})
			put(t, svc, objectstore.InputKey(big.ID, "in.csv"), 11)
			_, err := limited.ConfirmUpload(ctx, tenant, big.ID)
			wantErr(t, err, commonops.ETOOLARGE, "")
			if !strings.Contains(commonops.ErrorMessage(err), "over the limit of 10") {
				t.Errorf("got %q, want the limit named", commonops.ErrorMessage(err))
			}
		})
	})
}

func TestClaim(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := create(t, svc, commonops.CreateInput{})
		t.Run("Invalid", func(t *testing.T) {
			for _, c := range []struct {
				name         string
				workerID     string
				leaseSeconds int
				field        string
			}{
				{"no workerId", "", 0, "workerId"},
				{"over-long workerId", strings.Repeat("w", operations.MaxWorkerIDLen+1), 0, "workerId"},
				{"control character in workerId", "w\n1", 0, "workerId"},
				{"format character in workerId", "bob\u200b", 0, "workerId"},
				{"negative lease", "w", -1, "leaseSeconds"},
				{"lease over the maximum", "w", int(operations.LeaseMax/time.Second) + 1, "leaseSeconds"},
			} {
				t.Run(c.name, func(t *testing.T) {
					_, err := svc.Claim(ctx, tenant, tk.ID, c.workerID, c.leaseSeconds)
					wantErr(t, err, commonops.EINVALID, c.field)
				})
			}
			_, err := svc.ClaimNext(ctx, "bob\u200b", nil, 1)
			wantErr(t, err, commonops.EINVALID, "workerId")
			if got, _ := svc.Get(ctx, tenant, tk.ID); got.Status != commonops.StatusPending {
				t.Fatalf("after refused claims: got status %s, want pending", got.Status)
			}
		})
		t.Run("Claims", func(t *testing.T) {
			got, err := svc.Claim(ctx, tenant, tk.ID, "worker-1", 60)
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			if got.Status != commonops.StatusProcessing || got.Attempt != 1 || got.LeaseOwner == nil || *got.LeaseOwner != "worker-1" || !got.LeaseExpiresAt.Equal(now.Add(time.Minute)) {
				t.Fatalf("claimed: got %s attempt %d owner %v lease %v, want processing attempt 1 by worker-1 until %v", got.Status, got.Attempt, got.LeaseOwner, got.LeaseExpiresAt, now.Add(time.Minute))
			}
			_, err = svc.Claim(ctx, tenant, tk.ID, "worker-2", 0)
			wantErr(t, err, commonops.ECONFLICT, "")
		})
		t.Run("ClaimNext", func(t *testing.T) {
			next := create(t, svc, commonops.CreateInput{TaskType: "next"})
			got, err := svc.ClaimNext(ctx, "worker-3", []commonops.Kind{{TaskType: "next", EntityType: "*"}}, 5)
			if err != nil || len(got) != 1 || got[0].ID != next.ID {
				t.Fatalf("ClaimNext: got %d tasks, err %v; want [%s]", len(got), err, next.ID)
			}
		})
	})
}

func TestWorkerReports(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		t.Run("Progress", func(t *testing.T) {
			tk := claim(t, svc, create(t, svc, commonops.CreateInput{}).ID)
			got, err := svc.Progress(ctx, tenant, tk.ID, commonops.Progress{Attempt: ptr(1), ProcessedItems: ptr(int64(7)), Message: ptr("seven")})
			if err != nil || got.ProcessedItems != 7 || got.Message == nil || *got.Message != "seven" {
				t.Fatalf("Progress: got %v err %v, want 7 processed, message seven", got, err)
			}
			_, err = svc.Progress(ctx, tenant, tk.ID, commonops.Progress{Progress: ptr(101.0)})
			wantErr(t, err, commonops.EINVALID, "progress")
			_, err = svc.Progress(ctx, tenant, tk.ID, commonops.Progress{Attempt: ptr(2), ProcessedItems: ptr(int64(8))})
			wantErr(t, err, commonops.ECONFLICT, "")
		})
		t.Run("FailAttemptRetries", func(t *testing.T) {
			tk := claim(t, svc, create(t, svc, commonops.CreateInput{MaxRetries: ptr(2)}).ID)
			got, err := svc.FailAttempt(ctx, tenant, tk.ID, 1, "transient", false)
			if err != nil || got.Status != commonops.StatusPending || got.RetryCount != 1 || got.ErrorMessage == nil || *got.ErrorMessage != "transient" {
				t.Fatalf("FailAttempt: got %v err %v, want pending, retryCount 1, errorMessage transient", got, err)
			}
			_, err = svc.FailAttempt(ctx, tenant, tk.ID, 1, "nul\x00", false)
			wantErr(t, err, commonops.EINVALID, "errorMessage")
		})
		t.Run("FailAttemptPermanent", func(t *testing.T) {
			tk := claim(t, svc, create(t, svc, commonops.CreateInput{MaxRetries: ptr(2)}).ID)
			got, err := svc.FailAttempt(ctx, tenant, tk.ID, 1, "broken file", true)
			if err != nil || got.Status != commonops.StatusFailed {
				t.Fatalf("FailAttempt permanent: got %v err %v, want failed", got, err)
			}
		})
		t.Run("Release", func(t *testing.T) {
			tk := claim(t, svc, create(t, svc, commonops.CreateInput{}).ID)
			_, err := svc.Release(ctx, tenant, tk.ID, 2)
			wantErr(t, err, commonops.ECONFLICT, "")
			got, err := svc.Release(ctx, tenant, tk.ID, 1)
			if err != nil || got.Status != commonops.StatusPending || got.LeaseOwner != nil || got.RetryCount != 0 {
				t.Fatalf("Release: got %v err %v, want pending without a lease or a retry counted", got, err)
			}
		})
	})
}

func TestLogs(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := claim(t, svc, create(t, svc, commonops.CreateInput{}).ID)
		t.Run("AppendInvalid", func(t *testing.T) {
			line := []commonops.LogEntry{{Message: "x"}}
			for _, c := range []struct {
				name    string
				attempt *int
				logs    []commonops.LogEntry
				field   string
			}{
				{"attempt 0", ptr(0), line, "attempt"},
				{"no lines", nil, nil, "logs"},
				{"too many lines", nil, make([]commonops.LogEntry, operations.MaxLogsPerCall+1), "logs"},
				{"bad level", nil, []commonops.LogEntry{{Level: "loud", Message: "x"}}, "logs[0].level"},
				{"empty message", nil, []commonops.LogEntry{{Message: ""}}, "logs[0].message"},
				{"huge details", nil, []commonops.LogEntry{{Message: "x", Details: []byte(`"` + strings.Repeat("d", operations.MaxLogDetailsLen) + `"`)}}, "logs[0].details"},
			} {
				t.Run(c.name, func(t *testing.T) {
					wantErr(t, svc.AppendLogs(ctx, tenant, tk.ID, c.attempt, c.logs), commonops.EINVALID, c.field)
				})
			}
			wantErr(t, svc.AppendLogs(ctx, tenant, tk.ID, ptr(2), line), commonops.ECONFLICT, "")
		})
		t.Run("AppendAndList", func(t *testing.T) {
			err := svc.AppendLogs(ctx, tenant, tk.ID, ptr(1), []commonops.LogEntry{{Message: "first"}, {Level: commonops.LogError, Message: "second"}})
			if err != nil {
				t.Fatalf("AppendLogs: %v", err)
			}
			logs, total, err := svc.Logs(ctx, commonops.LogFilter{TenantID: tenant, TaskID: tk.ID, Level: commonops.LogError})
			if err != nil || total != 1 || len(logs) != 1 || logs[0].Message != "second" {
				t.Fatalf("Logs at error level: got %v (total %d, err %v), want [second]", logs, total, err)
			}
			if _, total, _ := svc.Logs(ctx, commonops.LogFilter{TenantID: tenant, TaskID: tk.ID}); total != 2 {
				t.Fatalf("Logs: got total %d, want 2", total)
			}
		})
		t.Run("ListInvalid", func(t *testing.T) {
			for _, c := range []struct {
				name  string
				f     commonops.LogFilter
				code  string
				field string
			}{
				{"bad level", commonops.LogFilter{Level: "loud"}, commonops.EINVALID, "level"},
				{"pageSize over the maximum", commonops.LogFilter{PageSize: operations.LogsPageSizeMax + 1}, commonops.EINVALID, "pageSize"},
				{"negative page", commonops.LogFilter{Page: -1}, commonops.EINVALID, "page"},
				{"unknown task", commonops.LogFilter{TaskID: "6f1d2c3b-4a59-4c55-9a3e-0b7e9d5c2f0a"}, commonops.ENOTFOUND, ""},
			} {
				t.Run(c.name, func(t *testing.T) {
					c.f.TenantID = tenant
					if c.f.TaskID == "" {
						c.f.TaskID = tk.ID
					}
					_, _, err := svc.Logs(ctx, c.f)
					wantErr(t, err, c.code, c.field)
				})
			}
		})
	})
}

func TestFiles(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		// done has all three files: an uploaded input, an output and errors.
		done := create(t, svc, commonops.CreateInput{FileName: ptr("in.csv")})
		put(t, svc, objectstore.InputKey(done.ID, "in.csv"), 2)
		if _, err := svc.ConfirmUpload(ctx, tenant, done.ID); err != nil {
			t.Fatalf("ConfirmUpload: %v", err)
		}
		claim(t, svc, done.ID)
		put(t, svc, objectstore.OutputKey(done.ID, "out.csv"), 3)
		put(t, svc, objectstore.ErrorsKey(done.ID), 1)
		if _, err := svc.Progress(ctx, tenant, done.ID, commonops.Progress{Attempt: ptr(1), Status: ptr(commonops.StatusCompleted), OutputFileName: ptr("out.csv")}); err != nil {
			t.Fatalf("Progress to completed: %v", err)
		}
		running := claim(t, svc, create(t, svc, commonops.CreateInput{}).ID)
		cancelled, err := svc.Cancel(ctx, tenant, create(t, svc, commonops.CreateInput{}).ID)
		if err != nil {
			t.Fatalf("Cancel: %v", err)
		}

		t.Run("Download", func(t *testing.T) {
			for _, c := range []struct {
				name     string
				id       string
				which    string
				fileName string // "" when an error is wanted
				code     string
			}{
				{"output", done.ID, operations.FileOutput, "out.csv", ""},
				{"output by default", done.ID, "", "out.csv", ""},
				{"errors", done.ID, operations.FileErrors, "errors.csv", ""},
				{"input", done.ID, operations.FileInput, "in.csv", ""},
				{"unknown kind", done.ID, "secret", "", commonops.EINVALID},
				{"output of a running task", running.ID, operations.FileOutput, "", commonops.ECONFLICT},
				{"no output", cancelled.ID, operations.FileOutput, "", commonops.ENOTFOUND},
				{"no input", cancelled.ID, operations.FileInput, "", commonops.ENOTFOUND},
				{"errors not in storage", cancelled.ID, operations.FileErrors, "", commonops.ENOTFOUND},
			} {
				t.Run(c.name, func(t *testing.T) {
					d, err := svc.DownloadURL(ctx, tenant, c.id, c.which)
					if c.code != "" {
						wantErr(t, err, c.code, "")
						return
					}
					if err != nil {
						t.Fatalf("DownloadURL: %v", err)
					}
					if d.FileName != c.fileName || d.DownloadURL == "" || !d.ExpiresAt.After(time.Now()) {
						t.Fatalf("got %+v, want a live URL for %s", d, c.fileName)
					}
				})
			}
		})
		t.Run("OutputURL", func(t *testing.T) {
			u, err := svc.OutputURL(ctx, tenant, running.ID, ptr(1), "out.csv", "text/csv")
			if err != nil || u.URL == "" {
				t.Fatalf("OutputURL: got %v err %v, want a URL", u, err)
			}
			for _, c := range []struct {
				name        string
				attempt     *int
				fileName    string
				contentType string
				code        string
				field       string
			}{
				{"no file name", nil, "", "", commonops.EINVALID, "fileName"},
				{"only dots", nil, "..", "", commonops.EINVALID, "fileName"},
				{"unprintable content type", nil, "out.csv", "text/csv\r\nX-Evil: 1", commonops.EINVALID, "contentType"},
				{"over-long content type", nil, "out.csv", strings.Repeat("t", commonops.MaxContentTypeLen+1), commonops.EINVALID, "contentType"},
				{"attempt 0", ptr(0), "out.csv", "", commonops.EINVALID, "attempt"},
				{"stale attempt", ptr(2), "out.csv", "", commonops.ECONFLICT, ""},
			} {
				t.Run(c.name, func(t *testing.T) {
					_, err := svc.OutputURL(ctx, tenant, running.ID, c.attempt, c.fileName, c.contentType)
					wantErr(t, err, c.code, c.field)
				})
			}
		})
		t.Run("WithoutObjectStore", func(t *testing.T) {
			bare := *svc
			bare.Objects = nil
			_, err := bare.DownloadURL(ctx, tenant, done.ID, operations.FileOutput)
			wantErr(t, err, commonops.EUNAVAILABLE, "")
			_, err = bare.OutputURL(ctx, tenant, running.ID, ptr(1), "out.csv", "")
			wantErr(t, err, commonops.EUNAVAILABLE, "")
		})
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := create(t, svc, commonops.CreateInput{})
		claim(t, svc, tk.ID)
		if _, err := svc.Cancel(ctx, tenant, tk.ID); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		all, err := svc.Events(ctx, tenant, tk.ID, 0, 100)
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		types := func(evs []commonops.Event) []string {
			out := []string{}
			for _, e := range evs {
				out = append(out, e.EventType)
			}
			return out
		}
		if got, want := types(all), []string{commonops.EventCreated, commonops.EventStarted, commonops.EventCancelled}; !slices.Equal(got, want) {
			t.Fatalf("Events: got %v, want %v", got, want)
		}
		for _, c := range []struct {
			name    string
			tenant  string
			id      string
			afterID int64
			limit   int
			want    []string // nil when the task is not found
		}{
			{"after the first", tenant, tk.ID, all[0].ID, 100, []string{commonops.EventStarted, commonops.EventCancelled}},
			{"after the first, one", tenant, tk.ID, all[0].ID, 1, []string{commonops.EventStarted}},
			{"after the last", tenant, tk.ID, all[2].ID, 100, []string{}},
			{"another tenant's task", "another-tenant", tk.ID, 0, 100, nil},
		} {
			t.Run("EventsAfter "+c.name, func(t *testing.T) {
				got, err := svc.EventsAfter(ctx, c.tenant, c.id, c.afterID, c.limit)
				if c.want == nil {
					wantErr(t, err, commonops.ENOTFOUND, "")
					return
				}
				if err != nil {
					t.Fatalf("EventsAfter: %v", err)
				}
				if !slices.Equal(types(got), c.want) {
					t.Fatalf("EventsAfter: got %v, want %v", types(got), c.want)
				}
			})
		}
		t.Run("Events of an unknown task", func(t *testing.T) {
			_, err := svc.Events(ctx, tenant, "6f1d2c3b-4a59-4c55-9a3e-0b7e9d5c2f0a", 0, 100)
			wantErr(t, err, commonops.ENOTFOUND, "")
		})
		t.Run("Ping", func(t *testing.T) {
			if err := svc.Ping(ctx); err != nil {
				t.Fatalf("Ping: got %v, want nil", err)
			}
		})
	})
}
