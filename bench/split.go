package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	splitRounds = flag.Int("rounds", 2, "e2e-split: rounds, each running one process and then the split pair")
	splitRate   = flag.Int("rate", 1000, "e2e-split: tasks/s created in the latency phase")
)

// benchE2ESplit: the roles in one process against the same roles split over
// two processes (--roles api; --roles worker,maintenance) on the same
// PostgreSQL server, embedded bus, alternating round by round. Each setup
// gets a fresh database and two phases: as many noop creates as the
// clients manage (throughput to the last completion), then creates paced
// at -rate (create → claim p50/p99), once the outbox has published what
// the first phase left unsent. Claims are counted by source from the
// worker process's metrics: "event" is a claim on an event the relay
// delivered, "poll" one by the fallback poller or the claim round a
// finished task asks for.
func benchE2ESplit(ctx context.Context) error {
	setupLine(fmt.Sprintf("%d HTTP clients create noop tasks for %s, then %d tasks/s for %s", *clients, *duration, *splitRate, *duration/2),
		"one = every role in one process; split = --roles api and --roles worker,maintenance side by side, same database",
		"PostgreSQL, embedded bus, default poll interval (2s) and worker concurrency",
		fmt.Sprintf("%d alternating rounds", *splitRounds))
	fmt.Printf("%-6s %-5s %8s %7s %7s %7s %9s %9s %7s %7s %7s %9s\n", "round", "setup", "tasks", "tasks/s", "event", "poll", "p50", "p99", "event", "poll", "late", "api")
	fmt.Printf("%-6s %-5s %8s %7s %7s %7s %9s %9s %7s %7s %7s %9s\n", "", "", "(load)", "(load)", "(load)", "(load)", "(@rate)", "(@rate)", "(@rate)", "(@rate)", "(@rate)", "relayed")
	for round := 1; round <= *splitRounds; round++ {
		for _, split := range []bool{false, true} {
			r, err := runSplitSetup(ctx, split)
			if err != nil {
				return err
			}
			name := "one"
			if split {
				name = "split"
			}
			fmt.Printf("%-6d %-5s %8d %7.0f %7d %7d %9s %9s %7d %7d %7d %9d\n", round, name, r.tasks, r.rate, r.load.event, r.load.poll,
				ms(r.p50), ms(r.p99), r.paced.event, r.paced.poll, r.late, r.apiRelayed)
			cpuTable(r.cpuBefore, r.cpuAfter, r.elapsed, r.tasks)
			printDBWork(r.db, r.tasks+r.pacedTasks)
			printGroups(r.groups, r.tasks+r.pacedTasks)
			r.printPaced()
		}
	}
	return nil
}

type claims struct{ event, poll int64 }

type splitResult struct {
	tasks    int64
	rate     float64
	load     claims
	p50, p99 time.Duration
	paced    claims
	late     int64 // created events the worker found late during the paced phase
	// The paced phase's creates over HTTP, and its created events' delay
	// from their task's create to the worker (estimated from the worker's
	// histogram, as histogram_quantile does).
	create50, create99 time.Duration
	delay50, delay99   time.Duration
	apiRelayed         int64 // rows the API process of the split pair relayed to its own bus
	// drain is how long the outbox took to empty after the load phase's
	// last completion; the paced phase starts after.
	drain      time.Duration
	pacedTasks int64
	db         dbWork // over both phases: tasks + pacedTasks
	groups     []processGroups

	// The machine's CPU use by process over the load phase.
	cpuBefore, cpuAfter cpuUse
	elapsed             time.Duration
}

// runSplitSetup starts one process, or the api and worker pair, on a fresh
// database and runs both phases.
func runSplitSetup(ctx context.Context, split bool) (r splitResult, err error) {
	dbURL, err := freshDatabase(ctx, "commonops_bench_split")
	if err != nil {
		return r, err
	}
	db := "COMMONOPS_DATABASE_URL=" + dbURL
	apiDebug, workerDebug := freePort(), freePort()
	apiEnv := []string{db, fmt.Sprintf("COMMONOPS_DEBUG_ADDR=127.0.0.1:%d", apiDebug)}
	if split {
		apiEnv = append(apiEnv, "COMMONOPS_ROLES=api")
	}
	// The API first, so that a worker process starts on a migrated
	// database, as in a rollout.
	api, err := startService(ctx, apiEnv...)
	if err != nil {
		return r, err
	}
	defer api.stop()
	worker := api
	names := cpuNames{api.cmd.Process.Pid: "commonops"}
	if split {
		if worker, err = startService(ctx, db, "COMMONOPS_ROLES=worker,maintenance", fmt.Sprintf("COMMONOPS_DEBUG_ADDR=127.0.0.1:%d", workerDebug)); err != nil {
			return r, err
		}
		defer worker.stop()
		names = cpuNames{api.cmd.Process.Pid: "commonops api", worker.cmd.Process.Pid: "commonops worker"}
	}

	// Profiles over the load phase (-profile-dir): e2e-split-one.pprof, or
	// e2e-split-api.pprof and e2e-split-worker.pprof.
	var profiled []func() error
	if split {
		profiled = append(profiled, profileService(apiDebug, *duration, "e2e-split-api.pprof"),
			profileService(workerDebug, *duration, "e2e-split-worker.pprof"))
	} else {
		profiled = append(profiled, profileService(apiDebug, *duration, "e2e-split-one.pprof"))
	}
	r.cpuBefore = readCPU(names)
	start := time.Now()
	n, _, err := load(*clients, *duration, func(int, int) error { _, err := createTask(api.base, noopBody); return err })
	if err != nil {
		return r, err
	}
	elapsed, err := waitCompleted(n, start, func() (int64, error) { return completedCount(worker.base) })
	if err != nil {
		return r, err
	}
	r.tasks, r.rate = n, float64(n)/elapsed.Seconds()
	r.cpuAfter, r.elapsed = readCPU(names), elapsed
	for _, wait := range profiled {
		if err := wait(); err != nil {
			return r, err
		}
	}
	if r.load, err = claimCounts(worker.base); err != nil {
		return r, err
	}

	if r.drain, err = waitOutboxDrained(ctx, dbURL); err != nil {
		return r, err
	}
	lateBefore, delayBefore, err := delivery(worker)
	if err != nil {
		return r, err
	}
	paced, took, err := pacedCreates(api.base, *splitRate, *duration/2)
	if err != nil {
		return r, err
	}
	r.pacedTasks = paced
	r.create50, r.create99 = percentile(took, .5), percentile(took, .99)
	if _, err := waitCompleted(n+paced, time.Now(), func() (int64, error) { return completedCount(worker.base) }); err != nil {
		return r, err
	}
	lateAfter, delayAfter, err := delivery(worker)
	if err != nil {
		return r, err
	}
	r.late = int64(lateAfter - lateBefore)
	delays := delayAfter.since(delayBefore)
	r.delay50, r.delay99 = delays.quantile(.5), delays.quantile(.99)
	after, err := claimCounts(worker.base)
	if err != nil {
		return r, err
	}
	r.paced = claims{after.event - r.load.event, after.poll - r.load.poll}
	lat, err := claimLatenciesOf(ctx, dbURL, "paced")
	if err != nil {
		return r, err
	}
	r.p50, r.p99 = percentile(lat, .5), percentile(lat, .99)
	if err := checkCompleted(ctx, dbURL, n+paced); err != nil {
		return r, err
	}
	if r.db, err = readDBWork(ctx, dbURL); err != nil {
		return r, err
	}
	procs := []*service{api}
	if split {
		procs = append(procs, worker)
	}
	for _, p := range procs {
		v, err := samples(p.base, "commonops_db_write_group_size_count", "commonops_db_write_group_size_sum", "commonops_bus_dropped_total")
		if err != nil {
			return r, err
		}
		name := names[p.cmd.Process.Pid]
		r.groups = append(r.groups, processGroups{name: name, groups: int64(v[0]), writes: int64(v[1]), dropped: int64(v[2])})
	}
	if split {
		v, err := samples(api.base, "commonops_outbox_published_total")
		if err != nil {
			return r, err
		}
		r.apiRelayed = int64(v[0])
	}
	return r, nil
}

// pacedCreates creates noop tasks of entity "paced" at rate per second for
// d, task i due at start + i/rate (16 clients share the schedule, so a slow
// answer delays no other create), and returns how many it created and how
// long each create took.
func pacedCreates(base string, rate int, d time.Duration) (int64, []time.Duration, error) {
	total := int64(d.Seconds() * float64(rate))
	body := []byte(`{"taskType":"noop","entityType":"paced"}`)
	took := make([]time.Duration, total)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
				sent := time.Now()
				if _, err := createTask(base, body); err != nil {
					errs <- err
					return
				}
				took[i] = time.Since(sent)
			}
		})
	}
	wg.Wait()
	close(errs)
	return total, took, <-errs
}

// claimLatenciesOf reads started_at − created_at of every task of entity.
func claimLatenciesOf(ctx context.Context, dbURL, entity string) ([]time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT extract(epoch FROM started_at - created_at)::float8 FROM tasks WHERE entity_type = $1 AND started_at IS NOT NULL", entity)
	if err != nil {
		return nil, err
	}
	secs, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	lat := make([]time.Duration, len(secs))
	for i, s := range secs {
		lat[i] = time.Duration(s * float64(time.Second))
	}
	return lat, err
}

// printPaced prints how the paced phase went beyond the table's columns.
func (r splitResult) printPaced() {
	fmt.Printf("  the load phase's unsent events: published %s after its last completion\n", ms(r.drain))
	fmt.Printf("  at the rate: the create over HTTP p50 %s, p99 %s; create → event at the worker p50 ≈ %s, p99 ≈ %s\n",
		ms(r.create50), ms(r.create99), ms(r.delay50), ms(r.delay99))
}

// delivery reads the workers' late events and event delays
// (commonops_worker_late_events_total, commonops_worker_event_delay_seconds),
// summed over the worker processes.
func delivery(workers ...*service) (late float64, delay hist, err error) {
	for _, w := range workers {
		v, err := samples(w.base, "commonops_worker_late_events_total")
		if err != nil {
			return 0, delay, err
		}
		h, err := histogram(w.base, "commonops_worker_event_delay_seconds")
		if err != nil {
			return 0, delay, err
		}
		late, delay = late+v[0], delay.plus(h)
	}
	return late, delay, nil
}

// claimCounts reads commonops_worker_claims_total by source.
func claimCounts(base string) (claims, error) {
	v, err := samples(base, `commonops_worker_claims_total{source="event"}`, `commonops_worker_claims_total{source="poll"}`)
	return claims{int64(v[0]), int64(v[1])}, err
}

// samples reads the values of the named samples (name and labels as
// exposed) from a process's /metrics; an absent one is 0.
func samples(base string, names ...string) ([]float64, error) {
	v := make([]float64, len(names))
	err := metricLines(base, func(line string) error {
		for i, name := range names {
			if rest, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(rest, 64)
				if err != nil {
					return err
				}
				v[i] = f
			}
		}
		return nil
	})
	return v, err
}

// metricLines calls each with every line of a process's /metrics.
func metricLines(base string, each func(line string) error) error {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if err := each(sc.Text()); err != nil {
			return fmt.Errorf("metrics line %q: %w", sc.Text(), err)
		}
	}
	return sc.Err()
}

// processGroups is one process's write groups (commonops_db_write_group_size)
// and its embedded bus's drops over both phases.
type processGroups struct {
	name           string
	groups, writes int64
	dropped        int64 // events its embedded bus dropped, a subscriber's queue full
}

// printGroups prints each process's write groups per task and their mean
// size: each group is one of the commits printDBWork counts.
func printGroups(gs []processGroups, n int64) {
	if n == 0 {
		return
	}
	fmt.Print("  write groups a task:")
	for i, g := range gs {
		if i > 0 {
			fmt.Print(";")
		}
		mean := 0.0
		if g.groups > 0 {
			mean = float64(g.writes) / float64(g.groups)
		}
		fmt.Printf(" %s %.2f (%.1f writes each, %d events dropped)", g.name, float64(g.groups)/float64(n), mean, g.dropped)
	}
	fmt.Println()
}

// hist is a Prometheus histogram as /metrics exposes it: cumulative
// counts by upper bound, the last one +Inf.
type hist struct {
	le  []float64
	cum []float64
}

// histogram reads the buckets of the histogram name from a process's
// /metrics.
func histogram(base, name string) (hist, error) {
	var h hist
	prefix := name + `_bucket{le="`
	err := metricLines(base, func(line string) error {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			return nil
		}
		bound, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			return errors.New("no value")
		}
		le, err := strconv.ParseFloat(bound, 64) // "+Inf" parses
		if err != nil {
			return err
		}
		c, err := strconv.ParseFloat(count, 64)
		if err != nil {
			return err
		}
		h.le, h.cum = append(h.le, le), append(h.cum, c)
		return nil
	})
	return h, err
}

// since is h less an earlier reading of the same histogram.
func (h hist) since(before hist) hist {
	d := hist{le: h.le, cum: slices.Clone(h.cum)}
	for i := range d.cum {
		if i < len(before.cum) {
			d.cum[i] -= before.cum[i]
		}
	}
	return d
}

// plus is the sum of two readings of the same histogram in different
// processes (an empty h takes o's bounds).
func (h hist) plus(o hist) hist {
	if len(h.cum) == 0 {
		return hist{le: o.le, cum: slices.Clone(o.cum)}
	}
	d := hist{le: h.le, cum: slices.Clone(h.cum)}
	for i := range d.cum {
		if i < len(o.cum) {
			d.cum[i] += o.cum[i]
		}
	}
	return d
}

// quantile estimates quantile q by linear interpolation within the bucket
// that holds it, as PromQL's histogram_quantile does (0 when empty; the
// highest finite bound when it falls in +Inf).
func (h hist) quantile(q float64) time.Duration {
	n := len(h.cum)
	if n < 2 || h.cum[n-1] == 0 {
		return 0
	}
	want := q * h.cum[n-1]
	lower, below := 0.0, 0.0
	for i, c := range h.cum {
		if c >= want {
			if i == n-1 { // +Inf
				return seconds(h.le[n-2])
			}
			return seconds(lower + (h.le[i]-lower)*(want-below)/(c-below))
		}
		lower, below = h.le[i], c
	}
	return seconds(h.le[n-2])
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
