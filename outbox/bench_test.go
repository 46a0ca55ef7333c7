package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
)

// BenchmarkDrain is the store's share of relay throughput: b.N committed rows
// drained into a publisher that accepts everything at once. Compare with
// dapr's BenchmarkRelayDapr to see what the sidecar costs.
//
//	go test ./outbox -run '^$' -bench Drain -benchtime 10000x
func BenchmarkDrain(b *testing.B) {
	testdb.EachB(b, func(b *testing.B, s store.Store) {
		for done := 0; done < b.N; {
			ids := createTasks(b, s, min(500, b.N-done))
			done += len(ids)
		}
		accept := outbox.PublisherFunc(func(_ context.Context, msgs []outbox.Message) (int, error) { return len(msgs), nil })
		relay := outbox.NewRelay(s, accept, outbox.Config{})
		b.ResetTimer()
		start := time.Now()
		n, err := relay.Drain(context.Background())
		elapsed := time.Since(start)
		b.StopTimer()
		if err != nil || n != b.N {
			b.Fatalf("drain: got (%d, %v), want (%d, nil)", n, err, b.N)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "rows/s")
	})
}
