package postgres_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/commonops/commonops"
)

// pollGets is how many times a polling client reads its task after
// creating it.
const pollGets = 10

// BenchmarkCreatePoll is a fresh database under polling clients: 32
// goroutines each create a task and read it pollGets times, into a new
// schema that was never analysed (autovacuum off on tasks, so no analyse
// comes during the run). One operation is a create and its reads.
func BenchmarkCreatePoll(b *testing.B) {
	s := openWith(b, newSchema(b), createClients)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, "ALTER TABLE tasks SET (autovacuum_enabled = false)"); err != nil {
		b.Fatalf("disable autovacuum: %v", err)
	}
	b.SetParallelism(max(1, createClients/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			task, ch := newTask(b, "acme", commonops.CreateInput{TaskType: "import", EntityType: "product"})
			if _, err := s.CreateTask(ctx, task, ch, nil); err != nil {
				b.Error(err)
				return
			}
			for range pollGets {
				if _, err := s.GetTask(ctx, "acme", task.ID); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
