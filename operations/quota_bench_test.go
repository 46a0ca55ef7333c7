package operations_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
)

// BenchmarkCreateQuota measures Create on PostgreSQL, 32 callers at once
// (so group commit batches), without quotas and with them: light creates
// of 100 tenants far from their limits (the replica's cached figures
// decide, one read per tenant a second), and heavy creates (every one
// reads its tenant's figures; each of a new tenant, so none is refused).
//
//	go test -run '^$' -bench CreateQuota -benchtime 5s ./operations/
func BenchmarkCreateQuota(b *testing.B) {
	defaults := operations.Quotas{
		CreatesPerMinute: 1 << 30, // far: the bench makes thousands a tenant
		ConcurrentHeavy:  operations.QuotaConcurrentHeavyDefault,
		HeavyTypes:       operations.ParseHeavyTypes(operations.QuotaHeavyTypesDefault),
		StoredBytes:      operations.QuotaStoredBytesDefault,
	}
	for _, bc := range []struct {
		name     string
		quotas   operations.Quotas
		taskType string
		tenant   func(i int64) string
	}{
		{"off", operations.Quotas{}, "report", func(i int64) string { return fmt.Sprint("t", i%100) }},
		{"light", defaults, "report", func(i int64) string { return fmt.Sprint("t", i%100) }},
		{"heavy", defaults, "export", func(i int64) string { return fmt.Sprint("t", i) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st := testdb.Postgres(b)
			objects, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { objects.Close() })
			svc := &operations.Service{Store: st, Objects: objects, Quotas: bc.quotas}
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					in := commonops.CreateInput{TaskType: bc.taskType, EntityType: "product"}
					if _, _, err := svc.Create(context.Background(), operations.CreateRequest{TenantID: bc.tenant(i), Requester: "b", Input: in}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
