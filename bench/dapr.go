package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	daprRounds = flag.Int("dapr-rounds", 1, "e2e-dapr: rounds, each running one replica and then three")
	profileDir = flag.String("profile-dir", "", "create, batch, e2e, e2e-split, e2e-dapr: write each replica's CPU profile over the load phase into this directory (go tool pprof -top FILE)")
)

// benchE2EDapr: the same load through Dapr with one replica (every role,
// one sidecar) and with three (--roles api beside two --roles
// worker,maintenance, each with its own sidecar, one consumer group, cancels
// on the broadcast component), on the same PostgreSQL server and Redis,
// alternating. Each setup gets a fresh database and the two phases of
// e2e-split: as many noop creates as the clients manage (throughput to the
// last completion), then, once the outbox is empty, creates paced at
// -rate, whose create → claim p50/p99 crosses two sidecars in the
// three-replica setup (the API's publishes, a worker's delivers).
func benchE2EDapr(ctx context.Context) error {
	setupLine(fmt.Sprintf("%d HTTP clients create noop tasks for %s, then %d tasks/s for %s", *clients, *duration, *splitRate, *duration/2),
		"one = every role in one process with its daprd; three = --roles api + 2 × --roles worker,maintenance, each with its daprd",
		"PostgreSQL, daprd + Redis Streams, default poll interval (2s) and worker concurrency",
		fmt.Sprintf("%d alternating rounds", *daprRounds))
	fmt.Printf("%-6s %-5s %8s %7s %7s %7s %9s %9s %7s %7s %7s\n", "round", "setup", "tasks", "tasks/s", "event", "poll", "p50", "p99", "event", "poll", "late")
	fmt.Printf("%-6s %-5s %8s %7s %7s %7s %9s %9s %7s %7s %7s\n", "", "", "(load)", "(load)", "(load)", "(load)", "(@rate)", "(@rate)", "(@rate)", "(@rate)", "(@rate)")
	for round := 1; round <= *daprRounds; round++ {
		for _, workers := range []int{0, 2} {
			r, err := runDaprSetup(ctx, workers)
			if err != nil {
				return err
			}
			name := "one"
			if workers > 0 {
				name = "three"
			}
			fmt.Printf("%-6d %-5s %8d %7.0f %7d %7d %9s %9s %7d %7d %7d\n", round, name, r.tasks, r.rate, r.load.event, r.load.poll,
				ms(r.p50), ms(r.p99), r.paced.event, r.paced.poll, r.late)
			cpuTable(r.cpuBefore, r.cpuAfter, r.elapsed, r.tasks)
			r.printPaced()
		}
	}
	return nil
}

// runDaprSetup starts one replica with every role (workers 0), or an API
// replica and that many worker replicas, each with its daprd, and runs both
// phases.
func runDaprSetup(ctx context.Context, workers int) (r splitResult, err error) {
	dbURL, err := freshDatabase(ctx, "commonops_bench_dapr")
	if err != nil {
		return r, err
	}
	if err := clearStreams(); err != nil {
		return r, err
	}
	group := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	names := cpuNames{}
	var profiles []func() error // each collects a replica's CPU profile over the load phase
	replica := func(roles string) (*service, error) {
		daprPort, appPort, debugPort := freePort(), freePort(), freePort()
		svc, err := startService(ctx, "COMMONOPS_DATABASE_URL="+dbURL, "COMMONOPS_ROLES="+roles, "COMMONOPS_PUBSUB=dapr",
			fmt.Sprintf("COMMONOPS_DAPR_URL=http://127.0.0.1:%d", daprPort), fmt.Sprintf("COMMONOPS_DAPR_APP_ADDR=127.0.0.1:%d", appPort),
			"COMMONOPS_DAPR_BROADCAST_PUBSUB=broadcast", fmt.Sprintf("COMMONOPS_DEBUG_ADDR=127.0.0.1:%d", debugPort))
		if err != nil {
			return nil, err
		}
		stops = append(stops, svc.stop)
		name := fmt.Sprintf("commonops %s #%d", roles, len(names)+1)
		names[svc.cmd.Process.Pid] = name
		if *profileDir != "" {
			file := filepath.Join(*profileDir, fmt.Sprintf("e2e-dapr-%d-%s-%d.pprof", len(names), strings.ReplaceAll(roles, ",", "+"), workers))
			profiles = append(profiles, func() error { return cpuProfile(debugPort, *duration, file) })
		}
		if !strings.Contains(roles, "worker") {
			appPort = 0
		}
		stop, err := startSidecar(ctx, group, appPort, daprPort)
		if err != nil {
			return nil, err
		}
		stops = append(stops, stop)
		return svc, nil
	}
	var api *service
	var workerSvcs []*service
	if workers == 0 {
		if api, err = replica("api,worker,maintenance"); err != nil {
			return r, err
		}
		workerSvcs = []*service{api}
	} else {
		if api, err = replica("api"); err != nil {
			return r, err
		}
		for range workers {
			w, err := replica("worker,maintenance")
			if err != nil {
				return r, err
			}
			workerSvcs = append(workerSvcs, w)
		}
	}
	completed := func() (int64, error) {
		var sum int64
		for _, w := range workerSvcs {
			n, err := completedCount(w.base)
			if err != nil {
				return 0, err
			}
			sum += n
		}
		return sum, nil
	}
	claimed := func() (claims, error) {
		var sum claims
		for _, w := range workerSvcs {
			c, err := claimCounts(w.base)
			if err != nil {
				return sum, err
			}
			sum.event, sum.poll = sum.event+c.event, sum.poll+c.poll
		}
		return sum, nil
	}

	profiled := make(chan error, len(profiles))
	for _, p := range profiles {
		go func() { profiled <- p() }()
	}
	cpuBefore := readCPU(names)
	start := time.Now()
	n, _, err := load(*clients, *duration, func(int, int) error { _, err := createTask(api.base, noopBody); return err })
	if err != nil {
		return r, err
	}
	elapsed, err := waitCompleted(n, start, completed)
	if err != nil {
		return r, err
	}
	r.tasks, r.rate = n, float64(n)/elapsed.Seconds()
	r.cpuBefore, r.cpuAfter, r.elapsed = cpuBefore, readCPU(names), elapsed
	for range profiles {
		if err := <-profiled; err != nil {
			return r, err
		}
	}
	if r.load, err = claimed(); err != nil {
		return r, err
	}
	if r.drain, err = waitOutboxDrained(ctx, dbURL); err != nil {
		return r, err
	}
	lateBefore, delayBefore, err := delivery(workerSvcs...)
	if err != nil {
		return r, err
	}
	paced, took, err := pacedCreates(api.base, *splitRate, *duration/2)
	if err != nil {
		return r, err
	}
	r.create50, r.create99 = percentile(took, .5), percentile(took, .99)
	if _, err := waitCompleted(n+paced, time.Now(), completed); err != nil {
		return r, err
	}
	lateAfter, delayAfter, err := delivery(workerSvcs...)
	if err != nil {
		return r, err
	}
	r.late = int64(lateAfter - lateBefore)
	delays := delayAfter.since(delayBefore)
	r.delay50, r.delay99 = delays.quantile(.5), delays.quantile(.99)
	after, err := claimed()
	if err != nil {
		return r, err
	}
	r.paced = claims{after.event - r.load.event, after.poll - r.load.poll}
	lat, err := claimLatenciesOf(ctx, dbURL, "paced")
	if err != nil {
		return r, err
	}
	r.p50, r.p99 = percentile(lat, .5), percentile(lat, .99)
	return r, checkCompleted(ctx, dbURL, n+paced)
}

// clearStreams deletes the task topics' streams (operations.task.*) from
// Redis database 0, where the sidecars' components keep them. A bench
// setup's consumer group is new, and Dapr creates a new group at the start
// of its stream: without this, each setup's workers would first work
// through every event the setups before it published.
func clearStreams() error {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:6379", 5*time.Second)
	if err != nil {
		return fmt.Errorf("clear the Redis streams: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	const script = `for _, k in ipairs(redis.call('KEYS', 'operations.task.*')) do redis.call('DEL', k) end return 0`
	cmd := fmt.Sprintf("*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n", len(script), script) // no keys
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return fmt.Errorf("clear the Redis streams: %w", err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("clear the Redis streams: %w", err)
	}
	if !strings.HasPrefix(reply, ":") {
		return fmt.Errorf("clear the Redis streams: Redis answered %q", strings.TrimSpace(reply))
	}
	return nil
}

// startSidecar runs daprd with the pubsub component (consumer group group,
// shared by the replicas) and the broadcast one (a group per sidecar), on
// Redis database 0, delivering 32 events at once as deploy/dapr/pubsub.yaml
// does; appPort 0 runs it without an app (publishing only).
func startSidecar(ctx context.Context, group string, appPort, httpPort int) (func(), error) {
	dir, err := os.MkdirTemp("", "bench-dapr")
	if err != nil {
		return nil, err
	}
	component := func(name, consumerID string) string {
		return `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: ` + name + `
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:6379
  - name: consumerID
    value: "` + consumerID + `"
  - name: maxLenApprox
    value: "100000"
  - name: concurrency
    value: "32"
`
	}
	for name, body := range map[string]string{"pubsub.yaml": component("pubsub", group), "broadcast.yaml": component("broadcast", "{uuid}")} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	args := []string{"--app-id", "commonops-bench", "--dapr-http-port", strconv.Itoa(httpPort), "--dapr-grpc-port", strconv.Itoa(freePort()),
		"--metrics-port", strconv.Itoa(freePort()), "--dapr-internal-grpc-port", strconv.Itoa(freePort()), "--resources-path", dir, "--log-level", "warn"}
	if appPort > 0 {
		args = append(args, "--app-port", strconv.Itoa(appPort))
	}
	return launchDaprd(ctx, dir, httpPort, args...)
}
