package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	debugPort := freePort()
	svc, err := startService(ctx, "COMMONOPS_DATABASE_URL="+dbURL, fmt.Sprintf("COMMONOPS_DEBUG_ADDR=127.0.0.1:%d", debugPort))
	if err != nil {
		return err
	}
	defer svc.stop()
	names := cpuNames{svc.cmd.Process.Pid: "commonops"}
	setupLine(fmt.Sprintf("%d HTTP clients create noop tasks for %s", *clients, *duration),
		"commonops with every role in one process on PostgreSQL, embedded bus, default worker concurrency",
		"throughput = tasks created / time until the last one completed")

	profiled := profileService(debugPort, *duration, "e2e.pprof")
	cpuBefore := readCPU(names)
	start := time.Now()
	n, _, err := load(*clients, *duration, func(int, int) error { _, err := createTask(svc.base, noopBody); return err })
	if err != nil {
		return err
	}
	elapsed, err := waitCompleted(n, start, func() (int64, error) { return completedCount(svc.base) })
	if err != nil {
		return err
	}
	cpuAfter := readCPU(names)
	if err := profiled(); err != nil {
		return err
	}
	ours := float64(n) / elapsed.Seconds()
	if err := checkCompleted(ctx, dbURL, n); err != nil {
		return err
	}

	riverRate, err := benchRiver(ctx, false)
	if err != nil {
		return fmt.Errorf("river: %w", err)
	}
	tunedRate, err := benchRiver(ctx, true)
	if err != nil {
		return fmt.Errorf("river tuned: %w", err)
	}
	fmt.Printf("commonops end to end: %d tasks in %s = %.0f tasks/s   goal ≥ 1500/s: %s\n", n, elapsed.Round(time.Millisecond), ours, verdict(ours >= 1500))
	fmt.Printf("River defaults (one insert per transaction + no-op worker, %d inserters, 100 workers): %.0f jobs/s   ratio %.2f\n", *clients, riverRate, ours/riverRate)
	fmt.Printf("River tuned for throughput (fetch cooldown %s, poll %s, same load): %.0f jobs/s   ratio %.2f\n", riverTunedCooldown, riverTunedPoll, tunedRate, ours/tunedRate)
	fmt.Println("where the CPU went, from the first create to the last completion:")
	cpuTable(cpuBefore, cpuAfter, elapsed, n)
	return nil
}

// waitCompleted polls done until it reaches n and returns the time since
// start. done must cost the system under test next to nothing: counting
// rows in the tasks table 50 times a second took a fifth of this machine's
// CPU from the run being measured.
func waitCompleted(n int64, start time.Time, done func() (int64, error)) (time.Duration, error) {
	deadline := time.Now().Add(*completeWait)
	for {
		d, err := done()
		if err != nil {
			return 0, err
		}
		if d >= n {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("only %d of %d completed after %s", d, n, *completeWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// completedCount reads how many tasks the service's worker has completed
// from its metrics (counted once the completion is committed), the
// counterpart of the counter in River's no-op worker.
func completedCount(base string) (int64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "commonops_worker_tasks_total{") || !strings.Contains(line, `outcome="completed"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		total += v
	}
	return int64(total), sc.Err()
}

// checkCompleted confirms in the database that all n tasks completed.
func checkCompleted(ctx context.Context, dbURL string, n int64) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var done int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE status = 'completed'").Scan(&done); err != nil {
		return err
	}
	if done != n {
		return fmt.Errorf("%d tasks completed in the database, want %d", done, n)
	}
	return nil
}

// waitOutboxDrained waits until the outbox holds no unsent row (the
// relays have published every event committed so far) and returns how long
// that took: the events a burst leaves behind, which a paced phase would
// otherwise queue behind.
func waitOutboxDrained(ctx context.Context, dbURL string) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	start := time.Now()
	deadline := start.Add(*completeWait)
	for {
		var unsent bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM outbox WHERE sent_at IS NULL)").Scan(&unsent); err != nil {
			return 0, err
		}
		if !unsent {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the outbox still holds unsent events after %s", *completeWait)
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

// River tuned for throughput: how often a producer may fetch, and how
// often it polls without a notification.
const (
	riverTunedCooldown = 2 * time.Millisecond
	riverTunedPoll     = 20 * time.Millisecond
)

// benchRiver is River's end-to-end rate under the e2e load, with its
// defaults or, tuned, with riverTunedCooldown and riverTunedPoll.
func benchRiver(ctx context.Context, tuned bool) (float64, error) {
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
	cfg := &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		Workers: workers,
	}
	if tuned {
		cfg.FetchCooldown, cfg.FetchPollInterval = riverTunedCooldown, riverTunedPoll
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
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
	elapsed, err := waitCompleted(n, start, func() (int64, error) { return done.Load(), nil })
	if err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}
