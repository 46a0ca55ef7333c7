package webhook_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/webhook"
)

// TestMetrics: each attempt is counted by its outcome (a 2xx delivered, a
// 503 retried, the same 503 past the 24 h given up) and the delivered one's
// time from the terminal status to its 2xx, on the dispatcher's clock, is
// observed once; the backlog gauges count the pending delivery and its age.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ok, _ := receiver(t, 200)
	down, _ := receiver(t, 503)
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		created := time.Now().UTC().Truncate(time.Second)
		var clock atomic.Int64
		clock.Store(created.Add(2500 * time.Millisecond).UnixNano())
		now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
		start(t, s, webhook.Config{Registerer: reg, Now: now})
		reg.MustRegister(webhook.NewBacklogCollector(s, now, nil))
		backlog := func(what string, wantPending, wantAge float64) {
			t.Helper()
			got := map[string]float64{}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if m := mf.GetMetric(); len(m) == 1 && m[0].GetGauge() != nil {
					got[mf.GetName()] = m[0].GetGauge().GetValue()
				}
			}
			if got["commonops_webhook_pending"] != wantPending || got["commonops_webhook_oldest_pending_seconds"] != wantAge {
				t.Fatalf("backlog %s: got pending %v, oldest %vs, want %v, %vs", what, got["commonops_webhook_pending"], got["commonops_webhook_oldest_pending_seconds"], wantPending, wantAge)
			}
		}

		delivered := ended(t, s, "tenant-a", ok.URL, created)
		waitDeliveries(t, s, "tenant-a", delivered.ID, func(ds []*commonops.Delivery) bool {
			return len(ds) == 1 && ds[0].Status == commonops.DeliveryDelivered
		})
		retried := ended(t, s, "tenant-a", down.URL, created)
		waitDeliveries(t, s, "tenant-a", retried.ID, attempted(1))
		backlog("with a retry to come", 1, 2.5)
		clock.Store(created.Add(webhook.GiveUpAfter - time.Second).UnixNano())
		waitDeliveries(t, s, "tenant-a", retried.ID, func(ds []*commonops.Delivery) bool {
			return len(ds) == 1 && ds[0].Status == commonops.DeliveryFailed
		})
		backlog("once all ended", 0, 0)

		attempts, latency := map[string]float64{}, struct {
			count uint64
			sum   float64
		}{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "commonops_webhook_attempts_total":
					attempts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				case "commonops_webhook_delivery_seconds":
					latency.count, latency.sum = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				}
			}
		}
		want := map[string]float64{webhook.OutcomeDelivered: 1, webhook.OutcomeRetry: 1, webhook.OutcomeFailed: 1}
		for k, v := range want {
			if attempts[k] != v {
				t.Errorf("commonops_webhook_attempts_total{outcome=%q}: got %v, want %v (all: %v)", k, attempts[k], v, attempts)
			}
		}
		if latency.count != 1 || latency.sum != 2.5 {
			t.Errorf("commonops_webhook_delivery_seconds: got %d observations summing to %vs, want 1 of 2.5s", latency.count, latency.sum)
		}
	})
}
