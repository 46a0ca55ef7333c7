package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// closedPoll is how often a closed-loop client looks at its task.
const closedPoll = 5 * time.Millisecond

// benchClosed: a closed loop on a fresh, never-analysed database: each of
// -clients clients creates a noop task and polls it (GET every closedPoll)
// until it is completed, then creates the next; beside River tuned for
// throughput under the same loop (Insert, then JobGet until completed).
func benchClosed(ctx context.Context) error {
	dbURL, err := freshDatabase(ctx, "commonops_bench_closed")
	if err != nil {
		return err
	}
	svc, err := startService(ctx, "COMMONOPS_DATABASE_URL="+dbURL)
	if err != nil {
		return err
	}
	defer svc.stop()
	setupLine(fmt.Sprintf("%d clients, each creates a noop task and polls it every %s until completed, for %s", *clients, closedPoll, *duration),
		"commonops with every role in one process on a fresh PostgreSQL database (never analysed)")
	n, lat, err := load(*clients, *duration, func(int, int) error {
		id, err := createTask(svc.base, noopBody)
		if err != nil {
			return err
		}
		for {
			done, err := taskDone(svc.base, id)
			if err != nil || done {
				return err
			}
			time.Sleep(closedPoll)
		}
	})
	if err != nil {
		return err
	}
	ours := float64(n) / duration.Seconds()
	svc.stop()
	riverRate, riverLat, err := riverClosed(ctx)
	if err != nil {
		return fmt.Errorf("river: %w", err)
	}
	fmt.Printf("commonops closed loop: %.0f tasks/s (create → completed p50 %s, p99 %s)\n", ours, ms(percentile(lat, .5)), ms(percentile(lat, .99)))
	fmt.Printf("River tuned (cooldown %s, poll %s), same loop: %.0f jobs/s (p50 %s, p99 %s)   ratio %.2f\n", riverTunedCooldown, riverTunedPoll, riverRate, ms(percentile(riverLat, .5)), ms(percentile(riverLat, .99)), ours/riverRate)
	return nil
}

// taskDone reports whether task id is completed; a task that ended
// otherwise is an error.
func taskDone(base, id string) (bool, error) {
	resp, err := get(base + "/api/v1/operations/tasks/" + id)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("get %s: %d %s", id, resp.StatusCode, b)
	}
	var t struct{ Status string }
	if err := json.Unmarshal(b, &t); err != nil {
		return false, err
	}
	switch t.Status {
	case "completed":
		return true, nil
	case "failed", "cancelled":
		return false, fmt.Errorf("task %s ended %s", id, t.Status)
	}
	return false, nil
}

// riverClosed is River's rate and latencies under the closed loop.
func riverClosed(ctx context.Context) (float64, []time.Duration, error) {
	dbURL, err := freshDatabase(ctx, "commonops_bench_river_closed")
	if err != nil {
		return 0, nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return 0, nil, err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return 0, nil, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, nil, err
	}
	var done atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{done: &done})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		Workers:           workers,
		FetchCooldown:     riverTunedCooldown,
		FetchPollInterval: riverTunedPoll,
	})
	if err != nil {
		return 0, nil, err
	}
	if err := client.Start(ctx); err != nil {
		return 0, nil, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	}()
	n, lat, err := load(*clients, *duration, func(int, int) error {
		res, err := client.Insert(ctx, noopArgs{}, nil)
		if err != nil {
			return err
		}
		for {
			j, err := client.JobGet(ctx, res.Job.ID)
			if err != nil {
				return err
			}
			switch j.State {
			case rivertype.JobStateCompleted:
				return nil
			case rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
				return fmt.Errorf("job %d ended %s", j.ID, j.State)
			}
			time.Sleep(closedPoll)
		}
	})
	if err != nil {
		return 0, nil, err
	}
	return float64(n) / duration.Seconds(), lat, nil
}
