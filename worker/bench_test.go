package worker_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bus"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/maintenance"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// BenchmarkCancelLatency measures, on the embedded path (Service.Cancel →
// outbox row → relay → in-process bus → Pool.HandleEvent), the time from
// the cancel call to the processor seeing its context done. It reports p50
// and p99 in milliseconds (goal: p99 ≤ 1000).
func BenchmarkCancelLatency(b *testing.B) {
	testdb.EachB(b, func(b *testing.B, s store.Store) {
		ctx := context.Background()
		svc := newService(b, s, 30*time.Second)
		started := make(chan struct{}, 1)
		stopped := make(chan time.Time, 1)
		reg := worker.NewRegistry()
		reg.Register("long", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			stopped <- time.Now()
			return ctx.Err()
		}))
		pool := startPool(b, ctx, svc, reg, func(c *worker.Config) { c.PollInterval = time.Hour })
		events := bus.New(bus.WithLogger(quiet(b)))
		unsubscribe := events.Subscribe([]string{commonops.TopicCreated, commonops.TopicRetried, commonops.TopicCancelled},
			func(ctx context.Context, m bus.Message) error { return pool.HandleEvent(ctx, m.Topic, m.Task) })
		b.Cleanup(unsubscribe)
		relay := outbox.NewRelay(s, events, outbox.Config{Logger: quiet(b)})
		relay.Start(ctx)
		b.Cleanup(relay.Stop)

		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			task := create(b, svc, commonops.CreateInput{TaskType: "long", EntityType: "x"})
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				b.Fatal("task not started by its created event within 10s")
			}
			at := time.Now()
			if _, err := svc.Cancel(ctx, tenant, task.ID); err != nil {
				b.Fatal(err)
			}
			select {
			case stop := <-stopped:
				lat = append(lat, stop.Sub(at))
			case <-time.After(10 * time.Second):
				b.Fatal("processor still running 10s after the cancel")
			}
		}
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		pct := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	})
}

// BenchmarkDeadWorkerRescue measures the time from killing a pool in the
// middle of a task (its context cancelled: it writes nothing more, as after
// SIGKILL) to the task's next attempt starting in another pool. Everything
// on the way runs at its defaults: the maintenance tick that rescues the
// lapsed lease, the retry backoff with jitter, and the other pool's fallback
// poll. The lease is 2 s to keep the run short. Pools and the maintenance
// runner start at random moments, so that their ticks are not in step. It
// reports the median and the slowest time past the lease (goal: ≤ 5 s; at
// most a maintenance tick, the longest first backoff and a poll interval:
// 1 + 1 + 2 s).
func BenchmarkDeadWorkerRescue(b *testing.B) {
	const lease = 2 * time.Second
	testdb.EachB(b, func(b *testing.B, s store.Store) {
		svc := newService(b, s, lease)
		svc.BackoffBase, svc.BackoffMax, svc.Rand = 0, 0, nil // the defaults, not the tests' short, fixed backoff
		m := maintenance.New(maintenance.Config{Service: svc, Logger: quiet(b)})
		time.Sleep(rand.N(maintenance.IntervalDefault))
		m.Start(context.Background())
		b.Cleanup(m.Stop)

		// Both pools run the same processor: the first attempt holds its
		// task until its pool is killed, the second records its start.
		type start struct {
			pool    int
			attempt int
			at      time.Time
		}
		starts := make(chan start, 4)
		kills := make([]context.CancelFunc, 2)
		launch := func(i int) {
			reg := worker.NewRegistry()
			reg.Register("held", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
				starts <- start{i, job.Task().Attempt, time.Now()}
				if job.Task().Attempt == 1 {
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}))
			time.Sleep(rand.N(worker.PollIntervalDefault))
			ctx, kill := context.WithCancel(context.Background())
			kills[i] = kill
			startPool(b, ctx, svc, reg, func(c *worker.Config) { c.PollInterval, c.ReportInterval = 0, 0 })
		}
		launch(0)
		launch(1)
		recv := func(what string) start {
			select {
			case st := <-starts:
				return st
			case <-time.After(lease + time.Minute):
				b.Fatalf("no %s within a minute past the lease", what)
				return start{}
			}
		}

		over := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			create(b, svc, commonops.CreateInput{TaskType: "held", EntityType: "x", MaxRetries: ptr(3)})
			first := recv("first attempt")
			kills[first.pool]()
			killed := time.Now()
			second := recv("second attempt")
			if second.attempt != 2 || second.pool == first.pool {
				b.Fatalf("got attempt %d in pool %d after pool %d was killed, want attempt 2 in the other pool", second.attempt, second.pool, first.pool)
			}
			over = append(over, second.at.Sub(killed)-lease)
			launch(first.pool) // a fresh pool in place of the killed one
		}
		b.StopTimer()
		slices.Sort(over)
		b.ReportMetric(over[len(over)/2].Seconds(), "p50-s-past-lease")
		b.ReportMetric(over[len(over)-1].Seconds(), "max-s-past-lease")
	})
}
