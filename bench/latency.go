package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// benchLatency: time from create to the worker's claim, through the
// embedded bus, through daprd + Redis, and through the fallback poller
// alone (pub/sub down).
func benchLatency(ctx context.Context) error {
	const n = 300
	setupLine(fmt.Sprintf("%d noop tasks created one at a time, 20 ms apart", n),
		"latency = startedAt − createdAt of each task (both stamped by the service; createdAt is taken before the create commits, so this bounds 201 → claim from above)")

	// Embedded default: SQLite + in-process bus.
	svc, err := startService(ctx)
	if err != nil {
		return err
	}
	lat, err := claimLatencies(svc.base, n)
	svc.stop()
	if err != nil {
		return err
	}
	p50, p99 := percentile(lat, .5), percentile(lat, .99)
	fmt.Printf("embedded bus (SQLite):  p50 %s, p99 %s   goal p50 ≤ 5 ms, p99 ≤ 25 ms: %s\n", ms(p50), ms(p99), verdict(p50 <= 5*time.Millisecond && p99 <= 25*time.Millisecond))

	// Dapr sidecar with Redis, on PostgreSQL.
	dbURL, err := freshDatabase(ctx, "commonops_bench_latency")
	if err != nil {
		return err
	}
	if err := clearStreams(); err != nil {
		return err
	}
	daprPort := freePort()
	appPort := freePort()
	svc, err = startService(ctx, fmt.Sprintf("COMMONOPS_DAPR_APP_ADDR=127.0.0.1:%d", appPort), "COMMONOPS_DATABASE_URL="+dbURL, "COMMONOPS_PUBSUB=dapr",
		fmt.Sprintf("COMMONOPS_DAPR_URL=http://127.0.0.1:%d", daprPort), "COMMONOPS_POLL_INTERVAL=1h")
	if err != nil {
		return err
	}
	stopDapr, err := startDaprd(ctx, appPort, daprPort)
	if err != nil {
		svc.stop()
		return err
	}
	lat, err = claimLatencies(svc.base, n)
	stopDapr()
	svc.stop()
	if err != nil {
		return err
	}
	p99 = percentile(lat, .99)
	fmt.Printf("daprd + Redis (PostgreSQL, poller off): p50 %s, p99 %s   goal p99 ≤ 100 ms: %s\n", ms(percentile(lat, .5)), ms(p99), verdict(p99 <= 100*time.Millisecond))

	// Pub/sub down: only the fallback poller (default interval 2s) finds tasks.
	svc, err = startService(ctx, "COMMONOPS_PUBSUB=dapr", fmt.Sprintf("COMMONOPS_DAPR_URL=http://127.0.0.1:%d", freePort()))
	if err != nil {
		return err
	}
	lat, err = claimLatencies(svc.base, 50)
	svc.stop()
	if err != nil {
		return err
	}
	p99 = percentile(lat, .99)
	fmt.Printf("fallback poller alone (sidecar down, interval 2s): p50 %s, max %s   goal ≤ 2 s: %s\n", ms(percentile(lat, .5)), ms(percentile(lat, 1)), verdict(percentile(lat, 1) <= 2100*time.Millisecond))
	return nil
}

// claimLatencies creates n noop tasks and returns startedAt − createdAt of
// each once all have started.
func claimLatencies(base string, n int) ([]time.Duration, error) {
	ids := make([]string, 0, n)
	for range n {
		id, err := createTask(base, noopBody)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
		time.Sleep(20 * time.Millisecond)
	}
	lat := make([]time.Duration, 0, n)
	deadline := time.Now().Add(time.Minute)
	for _, id := range ids {
		for {
			resp, err := get(base + "/api/v1/operations/tasks/" + id)
			if err != nil {
				return nil, err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var t struct {
				CreatedAt time.Time  `json:"createdAt"`
				StartedAt *time.Time `json:"startedAt"`
			}
			if err := json.Unmarshal(b, &t); err != nil {
				return nil, fmt.Errorf("task %s: %v: %s", id, err, b)
			}
			if t.StartedAt != nil {
				lat = append(lat, t.StartedAt.Sub(t.CreatedAt))
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("task %s never started", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return lat, nil
}

// startDaprd runs the daprd sidecar with a Redis pub/sub component.
func startDaprd(ctx context.Context, appPort, httpPort int) (func(), error) {
	dir, err := os.MkdirTemp("", "bench-dapr")
	if err != nil {
		return nil, err
	}
	component := `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:6379
  - name: consumerID
    value: bench-` + strconv.Itoa(appPort) + `
`
	if err := os.WriteFile(filepath.Join(dir, "pubsub.yaml"), []byte(component), 0o644); err != nil {
		return nil, err
	}
	return launchDaprd(ctx, dir, httpPort, "--app-id", "commonops-bench", "--app-port", strconv.Itoa(appPort),
		"--dapr-http-port", strconv.Itoa(httpPort), "--dapr-grpc-port", strconv.Itoa(freePort()),
		"--metrics-port", strconv.Itoa(freePort()), "--resources-path", dir, "--log-level", "warn")
}

// launchDaprd runs daprd ($COMMONOPS_DAPRD, else the one .ci/tools.sh
// caches) with args, its log in dir, and waits up to a minute for its
// health endpoint on httpPort, then a second more for its subscriptions to
// settle. It returns how to stop it, which also removes dir; a daprd that
// does not become healthy leaves dir, and its log, for reading.
func launchDaprd(ctx context.Context, dir string, httpPort int, args ...string) (func(), error) {
	bin := os.Getenv("COMMONOPS_DAPRD")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "commonops-tools", "daprd")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	logf, _ := os.Create(filepath.Join(dir, "daprd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daprd (%s; install with .ci/tools.sh): %w", bin, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = logf.Close()
		_ = os.RemoveAll(dir)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/v1.0/healthz", httpPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 204 {
				time.Sleep(time.Second) // let the subscriptions settle
				return stop, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	return nil, fmt.Errorf("daprd did not become healthy; log in %s", dir) // kept for reading
}
