package app_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/operations"
)

// The queue gauges count every tenant's unfinished tasks by type on each
// scrape.
func TestQueueMetrics(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"), Roles: "api", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	for _, tenant := range []string{"acme", "globex", "globex"} {
		if _, _, err := a.Service().Create(ctx, operations.CreateRequest{TenantID: tenant, Input: commonops.CreateInput{TaskType: "report", EntityType: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := metric(t, a.URL(), `commonops_queue_pending{task_type="report"}`); got != 3 {
		t.Errorf("commonops_queue_pending: got %v, want 3 (every tenant's)", got)
	}
	if got := metric(t, a.URL(), `commonops_queue_running{task_type="report"}`); got != 0 {
		t.Errorf("commonops_queue_running: got %v, want 0", got)
	}
	if got := metric(t, a.URL(), `commonops_queue_oldest_waiting_seconds{task_type="report"}`); got < 0 || got > 60 {
		t.Errorf("commonops_queue_oldest_waiting_seconds: got %v, want a few seconds at most", got)
	}
}
