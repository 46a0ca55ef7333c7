package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

var noopBody = []byte(`{"taskType":"noop","entityType":"bench"}`)

// benchE2E: HTTP create → outbox event → claim → no-op processor →
// completed, on PostgreSQL, beside River inserting one job per transaction
// with a no-op worker on the same server.
func benchE2E(ctx context.Context) error {
	dbURL, err := freshDatabase(ctx, "commonops_bench_e2e")
	if err != nil {
		return err
	}
	svc, err := startService(ctx, "COMMONOPS_DATABASE_URL="+dbURL)
	if err != nil {
		return err
	}
	defer svc.stop()
	setupLine(fmt.Sprintf("%d HTTP clients create noop tasks for %s", *clients, *duration),
		"commonops with every role in one process on PostgreSQL, embedded bus, default worker concurrency",
		"throughput = tasks created / time until the last one completed")

	start := time.Now()
	n, _, err := load(*clients, *duration, func(int, int) error { _, err := createTask(svc.base, noopBody); return err })
	if err != nil {
		return err
	}
	elapsed, err := waitCompleted(ctx, dbURL, "SELECT count(*) FROM tasks WHERE status = 'completed'", n, start)
	if err != nil {
		return err
	}
	ours := float64(n) / elapsed.Seconds()

	riverRate, err := benchRiver(ctx)
	if err != nil {
		return fmt.Errorf("river: %w", err)
	}
	fmt.Printf("commonops end to end: %d tasks in %s = %.0f tasks/s   goal ≥ 1500/s: %s\n", n, elapsed.Round(time.Millisecond), ours, verdict(ours >= 1500))
	fmt.Printf("River (one insert per transaction + no-op worker, %d inserters, 100 workers): %.0f jobs/s   ratio %.2f\n", *clients, riverRate, ours/riverRate)
	return nil
}

// waitCompleted polls count until it reaches n and returns the time since
// start.
func waitCompleted(ctx context.Context, dbURL, count string, n int64, start time.Time) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var done int64
		if err := conn.QueryRow(ctx, count).Scan(&done); err != nil {
			return 0, err
		}
		if done >= n {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("only %d of %d completed after 2 minutes", done, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	done *atomic.Int64
}

func (w *noopWorker) Work(context.Context, *river.Job[noopArgs]) error {
	w.done.Add(1)
	return nil
}

func benchRiver(ctx context.Context) (float64, error) {
	dbURL, err := freshDatabase(ctx, "commonops_bench_river")
	if err != nil {
		return 0, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, err
	}
	var done atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{done: &done})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		Workers: workers,
	})
	if err != nil {
		return 0, err
	}
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	}()
	start := time.Now()
	n, _, err := load(*clients, *duration, func(int, int) error {
		_, err := client.Insert(ctx, noopArgs{}, nil)
		return err
	})
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for done.Load() < n {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("only %d of %d jobs worked after 2 minutes", done.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
