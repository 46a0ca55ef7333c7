package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/webhook"
)

// BenchmarkCommitToReceiver measures how long a terminal status takes to
// reach a local receiver: from the start of the cancel's commit to the
// receiver's handler, one task at a time, with the dispatcher woken by the
// store's signal. It reports the p50 and p99 of that latency (the goal is
// a p99 of at most 100 ms).
//
//	go test ./webhook/ -run '^$' -bench CommitToReceiver -benchtime 300x
func BenchmarkCommitToReceiver(b *testing.B) {
	testdb.EachB(b, func(b *testing.B, s store.Store) {
		got := make(chan time.Time, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- time.Now()
		}))
		defer srv.Close()
		signal := func() (<-chan struct{}, func()) {
			sig, ok := s.(interface {
				DeliverySignal() (<-chan struct{}, func())
			})
			if !ok {
				b.Fatal("the store has no DeliverySignal")
			}
			return sig.DeliverySignal()
		}
		d := webhook.New(s, webhook.Config{Secret: secret, Guard: loopback(b), Signal: signal})
		d.Start(context.Background())
		defer d.Stop()
		ctx := context.Background()
		url := srv.URL + "/done"
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			tk, ch, err := commonops.NewTask(uuid.NewString(), "bench", "u", commonops.CreateInput{TaskType: "import", EntityType: "product", CallbackURL: &url}, commonops.Limits{}, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.CreateTask(ctx, tk, ch, nil); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if _, err := s.UpdateTask(ctx, "bench", tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(time.Now()) }); err != nil {
				b.Fatal(err)
			}
			select {
			case at := <-got:
				lat = append(lat, at.Sub(start))
			case <-time.After(10 * time.Second):
				b.Fatal("no delivery within 10s")
			}
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
	})
}
