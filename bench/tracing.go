package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// benchTracing: end-to-end throughput (as e2e: HTTP create → event → claim
// → no-op → completed, one process on PostgreSQL, embedded bus) with
// tracing off and on, in alternating rounds of the same run. With tracing
// on every span goes over OTLP/HTTP to a sink in this process that reads
// and drops it, so export is paid for, not skipped. Goal: tracing costs at
// most 10% of the throughput.
func benchTracing(ctx context.Context) error {
	var exports, exported atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exports.Add(1)
		exported.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = sink.Serve(ln) }()
	defer sink.Close()
	otlp := "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String()

	setupLine(fmt.Sprintf("%d HTTP clients create noop tasks for %s per round", *clients, *duration),
		"commonops with every role in one process on PostgreSQL, embedded bus",
		"rounds off, on, off, on (a fresh database each); on: OTLP/HTTP export of every span to a local sink",
		"throughput = tasks created / time until the last one completed")
	rates := map[bool][]float64{}
	for i, on := range []bool{false, true, false, true} {
		dbURL, err := freshDatabase(ctx, fmt.Sprintf("commonops_bench_tracing_%d", i))
		if err != nil {
			return err
		}
		env := []string{"COMMONOPS_DATABASE_URL=" + dbURL}
		if on {
			env = append(env, otlp)
		}
		before := exports.Load()
		rate, n, err := e2eRound(ctx, env)
		if err != nil {
			return fmt.Errorf("round %d (tracing %v): %w", i+1, on, err)
		}
		rates[on] = append(rates[on], rate)
		fmt.Printf("round %d, tracing %-3s: %d tasks, %.0f tasks/s, %d OTLP exports\n", i+1, onOff(on), n, rate, exports.Load()-before)
	}
	off, on := meanOf(rates[false]), meanOf(rates[true])
	cost := (off - on) / off * 100
	fmt.Printf("tracing off %.0f tasks/s, on %.0f tasks/s (mean of 2 rounds each): cost %.1f%%   goal ≤ 10%%: %s   (%d exports, %.1f MB of spans)\n",
		off, on, cost, verdict(cost <= 10), exports.Load(), float64(exported.Load())/1e6)
	return nil
}

// e2eRound runs one e2e load against a fresh service with env and returns
// its throughput and the tasks created.
func e2eRound(ctx context.Context, env []string) (float64, int64, error) {
	svc, err := startService(ctx, env...)
	if err != nil {
		return 0, 0, err
	}
	defer svc.stop()
	start := time.Now()
	n, _, err := load(*clients, *duration, func(int, int) error { _, err := createTask(svc.base, noopBody); return err })
	if err != nil {
		return 0, 0, err
	}
	elapsed, err := waitCompleted(n, start, func() (int64, error) { return completedCount(svc.base) })
	if err != nil {
		return 0, 0, err
	}
	return float64(n) / elapsed.Seconds(), n, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func meanOf(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
