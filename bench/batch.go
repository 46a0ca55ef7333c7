package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

var (
	batchSize    = flag.Int("batch-size", 1000, "tasks per batch in the batch benchmark")
	batchClients = flag.Int("batch-clients", 4, "concurrent clients in the batch benchmark")
	batchKeys    = flag.Bool("batch-keys", false, "give every item of the batch benchmark its own idempotency key")
)

// benchBatch: POST /tasks/batch of -batch-size tasks with -batch-clients
// clients on PostgreSQL, beside River's InsertMany of as many jobs per
// call with as many clients on the same server, in the same run.
func benchBatch(ctx context.Context) error {
	dbURL, err := freshDatabase(ctx, "commonops_bench_batch")
	if err != nil {
		return err
	}
	debugPort := freePort()
	svc, err := startService(ctx, "COMMONOPS_DATABASE_URL="+dbURL, "COMMONOPS_ROLES=api", fmt.Sprintf("COMMONOPS_DEBUG_ADDR=127.0.0.1:%d", debugPort))
	if err != nil {
		return err
	}
	defer svc.stop()
	names := cpuNames{svc.cmd.Process.Pid: "commonops api"}
	keyed := "no idempotency keys"
	if *batchKeys {
		keyed = "an idempotency key per item"
	}
	setupLine(fmt.Sprintf("%d clients, %d tasks per batch, %s", *batchClients, *batchSize, keyed), "commonops roles=api on PostgreSQL",
		fmt.Sprintf("%s per phase", *duration))
	// batchBody is a batch of createBody; with -batch-keys each item has
	// a key no other request uses.
	batchBody := func(worker, i int) []byte {
		var body bytes.Buffer
		body.WriteString(`{"tasks":[`)
		for n := range *batchSize {
			if n > 0 {
				body.WriteByte(',')
			}
			if *batchKeys {
				fmt.Fprintf(&body, `{"idempotencyKey":"w%d-%d-%d",%s`, worker, i, n, createBody[1:])
			} else {
				body.Write(createBody)
			}
		}
		body.WriteString(`]}`)
		return body.Bytes()
	}
	plain := batchBody(0, 0)
	url := svc.base + "/api/v1/operations/tasks/batch"
	send := func(worker, i int) error {
		if *batchKeys {
			return postBatch(url, batchBody(worker, i), *batchSize)
		}
		return postBatch(url, plain, *batchSize)
	}
	warm := func(worker, i int) error { return send(worker+*batchClients, i) } // keys of their own
	if _, _, err := load(*batchClients, time.Second, warm); err != nil {       // warm up
		return err
	}
	profiled := profileService(debugPort, *duration, "batch-api.pprof")
	cpuBefore := readCPU(names)
	n, lat, err := load(*batchClients, *duration, send)
	if err != nil {
		return err
	}
	cpuAfter := readCPU(names)
	if err := profiled(); err != nil {
		return err
	}
	rate := float64(n) * float64(*batchSize) / duration.Seconds()
	svc.stop()
	river, err := riverInsertMany(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("batch create over HTTP: %.0f tasks/s (batch p50 %s, p99 %s)   goal ≥ 20000/s: %s\n", rate, ms(percentile(lat, .5)), ms(percentile(lat, .99)), verdict(rate >= 20000))
	fmt.Printf("River InsertMany, same clients and batch: %.0f jobs/s   ratio %.2f   goal ≥ 0.35: %s\n", river, rate/river, verdict(rate/river >= 0.35))
	fmt.Println("where the CPU went during the batch creates:")
	cpuTable(cpuBefore, cpuAfter, *duration, n*int64(*batchSize))
	return nil
}

// postBatch creates one batch and checks that every item was created.
func postBatch(url string, body []byte, want int) error {
	resp, err := post(url, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("batch: %d %s", resp.StatusCode, b)
	}
	var out struct{ Created, Failed int }
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	if out.Created != want {
		return fmt.Errorf("batch: %d created, %d failed, want %d created", out.Created, out.Failed, want)
	}
	return nil
}

// riverInsertMany is the rate of River's InsertMany of -batch-size jobs
// per call with -batch-clients clients on a fresh database, no worker
// running (inserts alone, as the batch create measures).
func riverInsertMany(ctx context.Context) (float64, error) {
	dbURL, err := freshDatabase(ctx, "commonops_bench_river_many")
	if err != nil {
		return 0, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
	if err != nil {
		return 0, err
	}
	params := make([]river.InsertManyParams, *batchSize)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{}}
	}
	insert := func(int, int) error { _, err := client.InsertMany(ctx, params); return err }
	if _, _, err := load(*batchClients, time.Second, insert); err != nil {
		return 0, err
	}
	n, _, err := load(*batchClients, *duration, insert)
	if err != nil {
		return 0, err
	}
	return float64(n) * float64(*batchSize) / duration.Seconds(), nil
}
