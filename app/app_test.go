package app_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/worker"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A graceful stop (SIGTERM cancels Run's context, as main does) is bounded
// by ShutdownTimeout even when a processor ignores its cancelled context:
// Run returns about a second later and the task is back to pending without
// using up a retry, for another worker to run.
func TestStopBoundsRunningTasks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := app.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"),
		ShutdownTimeout: time.Second, PollInterval: 50 * time.Millisecond, Logger: quiet()}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	a.Register("stubborn", "*", worker.ProcessorFunc(func(ctx context.Context, _ worker.Job) error {
		close(started)
		select { // ignores ctx for 10s
		case <-time.After(10 * time.Second):
		case <-release:
		}
		return nil
	}))
	runCtx, sigterm := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(runCtx) }()
	c, _, err := a.Service().Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant,
		Input: commonops.CreateInput{TaskType: "stubborn", EntityType: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not start within 10s")
	}

	begin := time.Now()
	sigterm()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d > 2500*time.Millisecond {
		t.Errorf("Run returned %s after the stop with a 1s shutdown timeout, want about 1s", d.Round(time.Millisecond))
	}

	st, _, err := app.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.GetTask(ctx, commonops.DefaultTenant, c.Task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != commonops.StatusPending || got.RetryCount != 0 {
		t.Errorf("got the task %s with retryCount %d, want pending with 0", got.Status, got.RetryCount)
	}
}
