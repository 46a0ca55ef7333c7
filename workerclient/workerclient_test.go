package workerclient_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/httpapi"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/workerclient"
)

const tenant = "acme"

// serve starts the real HTTP API on s with a local object store whose
// signed URLs point at the same server.
func serve(t *testing.T, s store.Store) (*operations.Service, *objectstore.Local, string) {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	objs, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: t.TempDir(), BaseURL: srv.URL, Secret: []byte("workerclient-test-secret-0123456")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &operations.Service{Store: s, Objects: objs, BackoffBase: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond}
	h = httpapi.NewServer(httpapi.Config{Service: svc, Files: objs.Handler(), Logger: log})
	return svc, objs, srv.URL
}

func create(t *testing.T, svc *operations.Service) *commonops.Task {
	t.Helper()
	retries := 2
	c, _, err := svc.Create(context.Background(), operations.CreateRequest{TenantID: tenant, Requester: "test", Input: commonops.CreateInput{TaskType: "remote", EntityType: "x", MaxRetries: &retries}})
	if err != nil {
		t.Fatal(err)
	}
	return c.Task
}

func TestRemoteWorkerLifecycle(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		svc, objs, url := serve(t, s)
		c := workerclient.New(url, workerclient.WithTenant(tenant))
		task := create(t, svc)

		pending, err := c.Pending(ctx, "remote", "", 10)
		if err != nil || len(pending) != 1 || pending[0].ID != task.ID {
			t.Fatalf("pending: got %d tasks, err %v; want the one task", len(pending), err)
		}
		claimed, err := c.Claim(ctx, task.ID, "remote-1", 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if claimed.Status != commonops.StatusProcessing || claimed.Attempt != 1 || *claimed.LeaseOwner != "remote-1" {
			t.Fatalf("claim: got %s attempt %d, want processing attempt 1 owned by remote-1", claimed.Status, claimed.Attempt)
		}
		if _, err := c.Claim(ctx, task.ID, "remote-2", 0); !workerclient.IsConflict(err) {
			t.Fatalf("second claim: got %v, want a 409", err)
		}
		if err := c.Logs(ctx, task.ID, 1, workerclient.LogLine{Level: commonops.LogInfo, Message: "starting", Details: map[string]int{"rows": 3}}); err != nil {
			t.Fatal(err)
		}
		total, done := int64(3), int64(2)
		got, err := c.Progress(ctx, task.ID, 1, commonops.Progress{TotalItems: &total, ProcessedItems: &done})
		if err != nil {
			t.Fatal(err)
		}
		if got.ProcessedItems != 2 || got.Progress < 66 || got.Progress > 67 {
			t.Fatalf("progress: got processed %d progress %v, want 2 and 66.67", got.ProcessedItems, got.Progress)
		}
		if _, err := c.Heartbeat(ctx, task.ID, 1); err != nil {
			t.Fatal(err)
		}
		u, err := c.OutputURL(ctx, task.ID, 1, "out.csv", "text/csv")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Upload(ctx, u, bytes.NewReader([]byte("a,b\n1,2\n"))); err != nil {
			t.Fatal(err)
		}
		name := "out.csv"
		done = 3
		final, err := c.Complete(ctx, task.ID, 1, commonops.Progress{ProcessedItems: &done, OutputFileName: &name})
		if err != nil {
			t.Fatal(err)
		}
		if final.Status != commonops.StatusCompleted || final.ProcessedItems != 3 || *final.OutputFileName != "out.csv" {
			t.Fatalf("complete: got %s processed %d output %v", final.Status, final.ProcessedItems, final.OutputFileName)
		}
		r, err := objs.Open(ctx, objectstore.AttemptOutputKey(task.ID, 1, "out.csv")) // where attempt 1's URL puts it
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != "a,b\n1,2\n" {
			t.Fatalf("uploaded output: got %q, want the bytes sent", b)
		}
		logs, n, err := svc.Logs(ctx, commonops.LogFilter{TenantID: tenant, TaskID: task.ID, Page: 1, PageSize: 10})
		if err != nil || n != 1 || logs[0].Message != "starting" {
			t.Fatalf("logs: got %d (%v), want the one line", n, err)
		}
		if _, err := c.Progress(ctx, task.ID, 1, commonops.Progress{}); !workerclient.IsConflict(err) || errors.Is(err, workerclient.ErrCancelled) {
			t.Fatalf("progress after completion: got %v, want a 409 that is not a cancellation", err)
		}
	})
}

func TestRemoteWorkerCancelledAndStale(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		svc, _, url := serve(t, s)
		c := workerclient.New(url, workerclient.WithTenant(tenant))

		cancelled := create(t, svc)
		if _, err := c.Claim(ctx, cancelled.ID, "remote-1", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Cancel(ctx, tenant, cancelled.ID); err != nil {
			t.Fatal(err)
		}
		_, err := c.Progress(ctx, cancelled.ID, 1, commonops.Progress{})
		var apiErr *workerclient.Error
		if !errors.Is(err, workerclient.ErrCancelled) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusConflict {
			t.Fatalf("progress on a cancelled task: got %v, want ErrCancelled from a 409", err)
		}

		stale := create(t, svc)
		if _, err := c.Claim(ctx, stale.ID, "remote-1", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Fail(ctx, stale.ID, 1, "disk full", false); err != nil {
			t.Fatal(err)
		}
		var second *commonops.Task
		deadline := time.Now().Add(5 * time.Second)
		for second == nil { // wait out the 10ms backoff
			second, err = c.Claim(ctx, stale.ID, "remote-2", 0)
			if err != nil && (!workerclient.IsConflict(err) || time.Now().After(deadline)) {
				t.Fatalf("reclaim: %v", err)
			}
		}
		if second.Attempt != 2 {
			t.Fatalf("reclaim: got attempt %d, want 2", second.Attempt)
		}
		done := int64(1)
		if _, err := c.Progress(ctx, stale.ID, 1, commonops.Progress{ProcessedItems: &done}); !workerclient.IsConflict(err) || errors.Is(err, workerclient.ErrCancelled) {
			t.Fatalf("stale attempt: got %v, want a 409 that is not a cancellation", err)
		}
		if _, err := c.OutputURL(ctx, stale.ID, 1, "x.csv", "text/csv"); !workerclient.IsConflict(err) {
			t.Fatalf("stale output-url: got %v, want a 409", err)
		}
		if err := c.Logs(ctx, stale.ID, 1, workerclient.LogLine{Message: "late"}); !workerclient.IsConflict(err) {
			t.Fatalf("stale logs: got %v, want a 409", err)
		}
		if _, err := c.Claim(ctx, "00000000-0000-0000-0000-000000000000", "remote-1", 0); err == nil || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Detail == "" {
			t.Fatalf("unknown task: got %v, want a 404 problem with a detail", err)
		}
	})
}
