package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

var (
	flowTasks = flag.Int("flow-tasks", 20000, "tasks tenant A queues in the fairness benchmark")
	flowSleep = flag.Int("flow-sleep-ms", 50, "how long each task of the fairness benchmark runs")
)

// benchFlow: fair shares. Tenant A queues -flow-tasks tasks of
// -flow-sleep-ms each, then tenant B queues 100: B's p99 wait (create →
// claim) beside its wait on an idle service, and A's throughput beside A
// alone; then the end-to-end figure with a flow limit on every claim
// (the limited path: a lock of the type and a count of its running tasks)
// beside none, in the same run.
func benchFlow(ctx context.Context) error {
	setupLine(fmt.Sprintf("noop tasks of %d ms, worker concurrency 32, one process on PostgreSQL, embedded bus", *flowSleep),
		fmt.Sprintf("loaded: tenant a queues %d, then tenant b 100; idle: b's 100 alone; alone: a's %d alone", *flowTasks, *flowTasks),
		"wait = started_at − created_at from the database")
	body := []byte(fmt.Sprintf(`{"taskType":"noop","entityType":"%%s","params":{"sleepMs":%d}}`, *flowSleep))
	run := func(name string, a, b int, env ...string) (bWaits []time.Duration, aRate float64, err error) {
		dbURL, err := freshDatabase(ctx, "commonops_bench_flow_"+name)
		if err != nil {
			return nil, 0, err
		}
		svc, err := startService(ctx, append([]string{"COMMONOPS_DATABASE_URL=" + dbURL, "COMMONOPS_WORKER_CONCURRENCY=32"}, env...)...)
		if err != nil {
			return nil, 0, err
		}
		defer svc.stop()
		start := time.Now()
		if err := createMany(svc.base, "a", []byte(fmt.Sprintf(string(body), "a")), a); err != nil {
			return nil, 0, err
		}
		if err := createMany(svc.base, "b", []byte(fmt.Sprintf(string(body), "b")), b); err != nil {
			return nil, 0, err
		}
		elapsed, err := waitCompleted(int64(a+b), start, func() (int64, error) { return completedCount(svc.base) })
		if err != nil {
			return nil, 0, err
		}
		if a > 0 {
			aRate = float64(a) / elapsed.Seconds()
		}
		bWaits, err = claimLatenciesOf(ctx, dbURL, "b")
		return bWaits, aRate, err
	}
	idle, _, err := run("idle", 0, 100)
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	loaded, aLoaded, err := run("loaded", *flowTasks, 100)
	if err != nil {
		return fmt.Errorf("loaded: %w", err)
	}
	// The same with shares of running tasks only, for the comparison.
	loadedRunning, aLoadedRunning, err := run("loaded_running", *flowTasks, 100, "COMMONOPS_FAIR_HALF_LIFE=off")
	if err != nil {
		return fmt.Errorf("loaded, running tasks only: %w", err)
	}
	_, aAlone, err := run("alone", *flowTasks, 0)
	if err != nil {
		return fmt.Errorf("alone: %w", err)
	}
	pi, pl, pr := percentile(idle, 0.99), percentile(loaded, 0.99), percentile(loadedRunning, 0.99)
	fmt.Printf("tenant b p99 wait: %s behind %d tasks of a, %s on an idle service = %.2f×   goal ≤ 2×: %s\n",
		ms(pl), *flowTasks, ms(pi), float64(pl)/float64(pi), verdict(float64(pl) <= 2*float64(pi)))
	fmt.Printf("  with shares of running tasks only (--fair-half-life off): %s = %.2f×; a %.0f tasks/s\n",
		ms(pr), float64(pr)/float64(pi), aLoadedRunning)
	fmt.Printf("tenant a throughput: %.0f tasks/s with b, %.0f alone = %.1f%% drop   goal ≤ 10%%: %s\n",
		aLoaded, aAlone, 100*(1-aLoaded/aAlone), verdict(aLoaded >= 0.9*aAlone))

	e2e := func(name string, env ...string) (float64, error) {
		dbURL, err := freshDatabase(ctx, "commonops_bench_flow_e2e_"+name)
		if err != nil {
			return 0, err
		}
		svc, err := startService(ctx, append([]string{"COMMONOPS_DATABASE_URL=" + dbURL}, env...)...)
		if err != nil {
			return 0, err
		}
		defer svc.stop()
		start := time.Now()
		n, _, err := load(*clients, *duration, func(int, int) error { _, err := createTask(svc.base, noopBody); return err })
		if err != nil {
			return 0, err
		}
		elapsed, err := waitCompleted(n, start, func() (int64, error) { return completedCount(svc.base) })
		if err != nil {
			return 0, err
		}
		return float64(n) / elapsed.Seconds(), nil
	}
	off, err := e2e("off")
	if err != nil {
		return err
	}
	on, err := e2e("on", "COMMONOPS_FLOW_LIMITS=noop=100000,bench/noop=100000", "COMMONOPS_FAIR_WEIGHTS=bench=2")
	if err != nil {
		return err
	}
	fmt.Printf("end to end (%d clients, %s): %.0f tasks/s with a flow limit and a weight on every claim, %.0f without = %.2f   goal ≥ 0.90: %s\n",
		*clients, *duration, on, off, on/off, verdict(on >= 0.9*off))
	return nil
}

// createMany creates n tasks of tenant with body, 32 at a time.
func createMany(base, tenant string, body []byte, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/operations/tasks", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Tenant-Id", tenant)
				resp, err := httpClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("create: %d %s", resp.StatusCode, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
