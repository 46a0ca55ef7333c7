package worker_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bus"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// BenchmarkCancelLatency measures, on the embedded path (Service.Cancel →
// outbox row → relay → in-process bus → Pool.HandleEvent), the time from
// the cancel call to the processor seeing its context done. It reports p50
// and p99 in milliseconds (goal: p99 ≤ 1000).
func BenchmarkCancelLatency(b *testing.B) {
	for _, drv := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}} {
		b.Run(drv.name, func(b *testing.B) {
			ctx := context.Background()
			s := drv.open(b)
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
}
