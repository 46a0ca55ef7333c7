package app_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/worker"
)

// TestCancelReachesTheRunningReplica runs three worker replicas, each with
// its own daprd, sharing the pub/sub component (one consumer group) and
// joined by the broadcast component, on Redis and on RabbitMQ. A task runs
// on one of them; its cancel, published once, must stop that replica's
// processor. The lease is two minutes, so the heartbeat (which also sees a
// cancel) comes every 40s: only the broadcast stops the run within the
// test's bound of 10s, as a cancel delivered to one of the other replicas
// would be ignored there. The figures (p50, p99 over 100 cancels) are
// logged; the 1s target is checked by reading them, not asserted.
func TestCancelReachesTheRunningReplica(t *testing.T) {
	t.Parallel()
	for _, broker := range []daprtest.Broker{daprtest.BrokerRedis, daprtest.BrokerRabbitMQ} {
		t.Run(string(broker), func(t *testing.T) {
			t.Parallel()
			const replicas, tries = 3, 100
			type stopped struct {
				replica int
				at      time.Time
			}
			running := make(chan string, tries)   // task ids, as their run starts
			stops := make(chan stopped, replicas) // one per cancelled run
			dbURL := databaseURL(t, "postgres")
			var apps []*app.App
			var first daprtest.Sidecar
			for i := range replicas {
				port := daprtest.FreePort(t)
				a, err := app.New(context.Background(), app.Config{
					DatabaseURL: dbURL, Addr: "127.0.0.1:0", DataDir: t.TempDir(), Roles: app.RoleWorker,
					PubSub: app.PubSubDapr, DaprURL: fmt.Sprintf("http://127.0.0.1:%d", port), DaprAppAddr: "127.0.0.1:0",
					DaprBroadcastPubSub: "broadcast", Lease: 2 * time.Minute, PollInterval: time.Hour,
					QuotaCreatesPerMinute: -1, QuotaConcurrentHeavy: -1, Logger: quiet(),
				})
				if err != nil {
					t.Fatal(err)
				}
				a.Register("hold", "*", worker.ProcessorFunc(func(ctx context.Context, job worker.Job) error {
					running <- job.Task().ID
					<-ctx.Done()
					stops <- stopped{replica: i, at: time.Now()}
					return ctx.Err()
				}))
				if err := a.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(a.Stop)
				opts := []daprtest.Option{daprtest.HTTPPort(port), daprtest.Broadcast(), daprtest.WithBroker(broker)}
				if i > 0 {
					opts = append(opts, daprtest.Join(first))
				}
				sc := daprtest.Start(t, appPort(t, a), opts...)
				if i == 0 {
					first = sc
				}
				apps = append(apps, a)
			}

			ctx := context.Background()
			svc := apps[0].Service()
			var lat []time.Duration
			onOther := 0
			for try := range tries {
				c, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant,
					Input: commonops.CreateInput{TaskType: "hold", EntityType: "x"}})
				if err != nil {
					t.Fatal(err)
				}
				select {
				case id := <-running:
					if id != c.Task.ID {
						t.Fatalf("try %d: got task %s running, want %s", try, id, c.Task.ID)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("try %d: task %s not running within 10s of its create", try, c.Task.ID)
				}
				begin := time.Now()
				if _, err := svc.Cancel(ctx, commonops.DefaultTenant, c.Task.ID); err != nil {
					t.Fatal(err)
				}
				select {
				case s := <-stops:
					lat = append(lat, s.at.Sub(begin))
					if s.replica != 0 {
						onOther++
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("try %d: the processor of task %s still runs 10s after its cancel (the heartbeat comes every 40s): the cancel did not reach its replica", try, c.Task.ID)
				}
			}
			if onOther == 0 {
				t.Errorf("got every task run on replica 0, want some on the others (the shared consumer group spreads them)")
			}
			slices.Sort(lat)
			t.Logf("%s: cancel → processor stopped over %d tries (%d on a replica other than the cancelling one): p50 %s, p99 %s, max %s",
				broker, tries, onOther, lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		})
	}
}

// appPort is the port of a's Dapr subscription routes (the sidecar's
// --app-port).
func appPort(t *testing.T, a *app.App) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(a.DaprAppAddr(), "127.0.0.1:%d", &port); err != nil {
		t.Fatalf("dapr app address %q: %v", a.DaprAppAddr(), err)
	}
	return port
}
