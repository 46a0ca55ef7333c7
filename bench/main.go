// Command bench measures commonops against its performance goals and prints
// each figure beside its reference, measured in the same run on the same
// machine. It builds the real commonops binary and talks HTTP to it over
// loopback, as clients do. It is a separate module so that River (the
// reference job queue) stays out of the service's dependencies.
//
//	cd bench && go run . create    # HTTP creates on PostgreSQL vs pgbench; GET p99 under load
//	cd bench && go run . batch     # POST /tasks/batch vs River InsertMany
//	cd bench && go run . list      # filtered list page over 1,000,000 tasks
//	cd bench && go run . sqlite    # HTTP creates on the embedded SQLite default
//	cd bench && go run . e2e       # create → event → claim → no-op → completed, vs River (defaults and tuned)
//	cd bench && go run . closed    # closed loop on a fresh database: create, poll until done; vs River tuned
//	cd bench && go run . e2e-split # e2e in one process vs --roles api + --roles worker,maintenance
//	cd bench && go run . latency   # create → claim latency: embedded bus, Dapr, poller alone
//	cd bench && go run . flow      # fair shares (tenant b behind a queued tenant a), flow limits on vs off
//	cd bench && go run . console   # the console's task-list page over 1,000,000 tasks
//	cd bench && go run . e2e-dapr  # e2e through Dapr: one replica vs an API and two worker replicas, each with its daprd
//	cd bench && go run . tracing   # e2e with tracing off and on (OTLP export), alternating rounds
//	cd bench && go run . streams   # 1,000 open event streams: extra memory; commit → stream delay under 1,000 tasks/s
//	cd bench && go run . all
//
// PostgreSQL comes from $BENCH_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable); each run
// creates and drops its own databases.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"
)

var (
	duration = flag.Duration("duration", 10*time.Second, "how long each load phase runs")
	clients  = flag.Int("clients", 32, "concurrent HTTP clients")
	rows     = flag.Int("rows", 1_000_000, "tasks seeded for the list benchmark")
	// completeWait bounds each wait for the tasks of a run to complete: a
	// shared machine's load can slow the worker several times over.
	completeWait = flag.Duration("wait", 2*time.Minute, "how long a run waits for its tasks to complete before it fails")
	bin          = flag.String("bin", "", "commonops binary to measure (e.g. one built from another commit); empty: build ../cmd/commonops")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run . [flags] create|batch|closed|list|sqlite|e2e|e2e-split|e2e-dapr|latency|flow|console|tracing|streams|all")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	defer removeBuilt()
	benches := map[string]func(context.Context) error{
		"create": benchCreate, "batch": benchBatch, "closed": benchClosed, "list": benchList, "sqlite": benchSQLite, "e2e": benchE2E, "e2e-split": benchE2ESplit, "latency": benchLatency, "flow": benchFlow,
		"console":  benchConsole,
		"e2e-dapr": benchE2EDapr,
		"tracing":  benchTracing,
		"streams":  benchStreams,
	}
	names := flag.Args()
	if len(names) == 1 && names[0] == "all" {
		names = []string{"create", "list", "sqlite", "e2e", "latency"}
	}
	if len(names) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	fmt.Printf("machine: %d CPUs, %s %s/%s\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, n := range names {
		b, ok := benches[n]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown benchmark %q\n", n)
			os.Exit(2)
		}
		fmt.Printf("\n== %s\n", n)
		if err := b(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", n, err)
			removeBuilt()
			os.Exit(1)
		}
	}
}
