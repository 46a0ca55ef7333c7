package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/worker"
)

// TestEventWaitsItsTurnBehindBacklog runs two imports of tenant a in a
// pool of three slots (imports capped at 2), marks the poller's last claim
// as having filled its slots (SetBacklog: a backlog is likely), and
// delivers the created event of tenant a's "other" task while tenant c has
// an older one: the free slot goes to c's task, whose tenant runs nothing,
// as the poller's fair claim ranks them, not to the task the event names.
// (The poller's own last claim, for the third slot, came back empty: with
// no backlog the event claims its task at once, as an idle pool should.)
func TestEventWaitsItsTurnBehindBacklog(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		svc := newService(t, s, 30*time.Second)
		ctx := context.Background()
		createOf := func(tenant, taskType string) *commonops.Task {
			c, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, Requester: "test",
				Input: commonops.CreateInput{TaskType: taskType, EntityType: "x"}})
			if err != nil {
				t.Fatalf("create %s task of %s: %v", taskType, tenant, err)
			}
			return c.Task
		}
		for range 4 {
			createOf("a", "import")
		}
		release := make(chan struct{})
		defer close(release)
		var mu sync.Mutex
		var started []*commonops.Task
		hold := worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
			mu.Lock()
			started = append(started, job.Task())
			mu.Unlock()
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
		reg := worker.NewRegistry()
		reg.Register("import", "*", hold)
		reg.Register("other", "*", hold)
		pool := startPool(t, ctx, svc, reg, func(c *worker.Config) {
			c.Concurrency = 3
			c.TypeConcurrency = map[string]int{"import": 2}
			c.PollInterval = time.Hour // claims come from the start and from nudges alone
		})
		startedN := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(started)
		}
		waitFor(t, "two imports running", 5*time.Second, func() bool { return startedN() == 2 })

		older := createOf("c", "other")
		named := createOf("a", "other")
		pool.SetBacklog(true)
		if err := pool.HandleEvent(ctx, commonops.TopicCreated, named); err != nil {
			t.Fatalf("HandleEvent: %v", err)
		}
		waitFor(t, "a third task running", 5*time.Second, func() bool { return startedN() == 3 })
		mu.Lock()
		third := started[2]
		mu.Unlock()
		if third.ID != older.ID {
			t.Fatalf("third task started: got %s of tenant %s, want %s of tenant c (the event named %s of tenant a)",
				third.ID, third.TenantID, older.ID, named.ID)
		}
	})
}
