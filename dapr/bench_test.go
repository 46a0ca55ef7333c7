package dapr_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/google/uuid"
)

// BenchmarkRelayDapr measures outbox relay throughput into a real daprd with
// the pubsub.in-memory component: b.N committed rows are drained (locked,
// published over HTTP, marked sent) and events/s is reported. Seeding the
// rows is not timed. Run with a fixed count, e.g.
//
//	go test ./dapr -run '^$' -bench RelayDapr -benchtime 10000x
func BenchmarkRelayDapr(b *testing.B) {
	stores := []struct {
		name string
		open func(testing.TB) store.Store
	}{{"postgres", testdb.Postgres}, {"sqlite", testdb.SQLite}}
	for _, st := range stores {
		for _, mode := range []struct {
			bulk bool
			conc int
		}{{false, dapr.ConcurrencyDefault}, {false, 64}, {true, dapr.ConcurrencyDefault}} {
			api, conc := "publish", mode.conc
			if mode.bulk {
				api = "bulk"
			}
			b.Run(fmt.Sprintf("%s/%s/concurrency=%d", st.name, api, conc), func(b *testing.B) {
				s := st.open(b)
				sc := daprtest.Start(b, 0, daprtest.InMemory())
				pub := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: sc.BaseURL, Concurrency: conc, Bulk: mode.bulk})
				relay := outbox.NewRelay(s, pub, outbox.Config{})
				seed(b, s, b.N)

				b.ResetTimer()
				start := time.Now()
				n, err := relay.Drain(context.Background())
				elapsed := time.Since(start)
				b.StopTimer()
				if err != nil || n != b.N {
					b.Fatalf("drain: got (%d, %v), want (%d, nil)", n, err, b.N)
				}
				b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
				b.Logf("%d events in %s = %.0f events/s (store %s, %s API, batch %d, concurrency %d, daprd pubsub.in-memory, GOMAXPROCS %d)",
					n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), st.name, api, outbox.BatchSizeDefault, conc, runtime.GOMAXPROCS(0))
			})
		}
	}
}

// seed commits n runnable tasks (n outbox rows) from a few goroutines.
func seed(b *testing.B, s store.Store, n int) {
	b.Helper()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				task, ch, err := commonops.NewTask(uuid.NewString(), commonops.DefaultTenant, "bench",
					commonops.CreateInput{TaskType: "import", EntityType: "product"}, commonops.Limits{}, time.Now())
				if err == nil {
					_, err = s.CreateTask(context.Background(), task, ch, nil)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("seed: %v", err)
	}
}
