package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

var createBody = []byte(`{"taskType":"export","entityType":"product","params":{"format":"csv","filter":{"category":"shoes"}}}`)

// benchCreate: HTTP creates with 32 clients on PostgreSQL, beside pgbench
// doing a one-row INSERT per transaction with 32 clients on the same server;
// then GET latency while creates run.
func benchCreate(ctx context.Context) error {
	dbURL, err := freshDatabase(ctx, "commonops_bench_create")
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
	setupLine(fmt.Sprintf("%d HTTP clients over loopback", *clients), "commonops roles=api on PostgreSQL (outbox relay to the embedded bus running)",
		fmt.Sprintf("%s per phase", *duration))

	tasksURL := svc.base + "/api/v1/operations/tasks"
	// Warm up connections and caches.
	if _, _, err := load(*clients, time.Second, func(int, int) error { _, err := createTask(svc.base, createBody); return err }); err != nil {
		return err
	}
	profiled := profileService(debugPort, *duration, "create-api.pprof")
	cpuBefore := readCPU(names)
	n, lat, err := load(*clients, *duration, func(int, int) error { _, err := createTask(svc.base, createBody); return err })
	if err != nil {
		return err
	}
	cpuAfter := readCPU(names)
	if err := profiled(); err != nil {
		return err
	}
	rate := float64(n) / duration.Seconds()
	tps, err := pgbench(ctx, dbURL)
	if err != nil {
		return err
	}
	fmt.Printf("create: %.0f tasks/s (p50 %s, p99 %s)   goal ≥ 3000/s: %s\n", rate, ms(percentile(lat, .5)), ms(percentile(lat, .99)), verdict(rate >= 3000))
	fmt.Printf("pgbench one-row INSERT, 32 clients: %.0f tps   ratio %.2f   goal ≥ 0.35: %s\n", tps, rate/tps, verdict(rate/tps >= 0.35))
	fmt.Println("where the CPU went during the creates:")
	cpuTable(cpuBefore, cpuAfter, *duration, n)

	// GET latency at that load: 28 clients keep creating while 4 read random
	// tasks among those created.
	var (
		mu  sync.Mutex
		ids []string
	)
	ids = append(ids, mustCreate(svc.base, 100)...)
	creators := *clients - 4
	var getLat []time.Duration
	var wg sync.WaitGroup
	var createN int64
	var createErr, getErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		createN, _, createErr = load(creators, *duration, func(int, int) error {
			id, err := createTask(svc.base, createBody)
			if err == nil {
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
			return err
		})
	}()
	go func() {
		defer wg.Done()
		_, getLat, getErr = load(4, *duration, func(int, int) error {
			mu.Lock()
			id := ids[rand.IntN(len(ids))]
			mu.Unlock()
			resp, err := get(tasksURL + "/" + id)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("get: %d", resp.StatusCode)
			}
			return nil
		})
	}()
	wg.Wait()
	if createErr != nil || getErr != nil {
		return fmt.Errorf("mixed load: %v %v", createErr, getErr)
	}
	p99 := percentile(getLat, .99)
	fmt.Printf("GET /tasks/{id} under load (%d creators at %.0f/s + 4 readers): p50 %s, p99 %s   goal p99 < 10 ms: %s\n",
		creators, float64(createN)/duration.Seconds(), ms(percentile(getLat, .5)), ms(p99), verdict(p99 < 10*time.Millisecond))
	return nil
}

func mustCreate(base string, n int) []string {
	ids := make([]string, 0, n)
	for range n {
		id, err := createTask(base, createBody)
		if err != nil {
			panic(err)
		}
		ids = append(ids, id)
	}
	return ids
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs a one-row INSERT per transaction with the same number of
// clients on the same database and returns its tps.
func pgbench(ctx context.Context, dbURL string) (float64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_insert (id bigserial PRIMARY KEY, tenant_id text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	conn.Close(ctx)
	if err != nil {
		return 0, err
	}
	script, err := os.CreateTemp("", "pgbench-*.sql")
	if err != nil {
		return 0, err
	}
	defer os.Remove(script.Name())
	fmt.Fprintln(script, `INSERT INTO bench_insert (tenant_id, payload) VALUES ('bench', '{"format":"csv"}');`)
	script.Close()
	out, err := exec.CommandContext(ctx, "pgbench", "-n", "-c", strconv.Itoa(*clients), "-j", "2",
		"-T", strconv.Itoa(int(duration.Seconds())), "-f", script.Name(), dbURL).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %v: %s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// benchSQLite: HTTP creates on the embedded default.
func benchSQLite(ctx context.Context) error {
	svc, err := startService(ctx, "COMMONOPS_ROLES=api")
	if err != nil {
		return err
	}
	defer svc.stop()
	setupLine(fmt.Sprintf("%d HTTP clients", *clients), "commonops roles=api on the embedded SQLite default (WAL)", duration.String())
	n, lat, err := load(*clients, *duration, func(int, int) error { _, err := createTask(svc.base, createBody); return err })
	if err != nil {
		return err
	}
	rate := float64(n) / duration.Seconds()
	fmt.Printf("create on SQLite: %.0f tasks/s (p50 %s, p99 %s)   goal ≥ 1000/s: %s\n", rate, ms(percentile(lat, .5)), ms(percentile(lat, .99)), verdict(rate >= 1000))
	return nil
}

// timedGets GETs url n times in a row and returns the latencies of all but
// the first warm ones (they warm the caches); an answer other than 200 is
// an error.
func timedGets(url string, n, warm int) ([]time.Duration, error) {
	var lat []time.Duration
	for i := range n {
		t := time.Now()
		resp, err := get(url)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		if i >= warm {
			lat = append(lat, time.Since(t))
		}
	}
	return lat, nil
}

// seededService starts commonops (roles=api) on a fresh database name
// seeded with *rows tasks, 90% of them in tenant "bench", vacuumed and
// analysed as a table of that size is by the time anyone lists it (the
// visibility map lets counts use index-only scans). It returns how long
// the seed took.
func seededService(ctx context.Context, name string) (*service, time.Duration, error) {
	dbURL, err := freshDatabase(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	svc, err := startService(ctx, "COMMONOPS_DATABASE_URL="+dbURL, "COMMONOPS_ROLES=api")
	if err != nil {
		return nil, 0, err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		svc.stop()
		return nil, 0, err
	}
	defer conn.Close(ctx)
	t0 := time.Now()
	_, err = conn.Exec(ctx, fmt.Sprintf(`
INSERT INTO tasks (id, tenant_id, task_type, entity_type, status, priority, params, requested_by, upload_status,
                   progress, processed_items, attempt, max_retries, created_at, updated_at, completed_at)
SELECT gen_random_uuid()::text,
       CASE WHEN i %% 10 = 0 THEN 'other' ELSE 'bench' END,
       (ARRAY['export','import','sync','report'])[1 + i %% 4],
       (ARRAY['product','order','customer','invoice','stock'])[1 + i %% 5],
       (ARRAY['completed','completed','completed','failed','cancelled','pending','processing'])[1 + i %% 7],
       0, '{}', 'user' || (i %% 50), 'none', 100, i %% 1000, 1, 3,
       now() - make_interval(secs => i), now() - make_interval(secs => i), now() - make_interval(secs => i)
FROM generate_series(1, %d) AS i`, *rows))
	if err == nil {
		_, err = conn.Exec(ctx, "VACUUM ANALYZE tasks")
	}
	if err != nil {
		svc.stop()
		return nil, 0, fmt.Errorf("seed: %w", err)
	}
	return svc, time.Since(t0), nil
}

// benchList: a filtered list page over 1,000,000 tasks of one tenant.
func benchList(ctx context.Context) error {
	svc, seeded, err := seededService(ctx, "commonops_bench_list")
	if err != nil {
		return err
	}
	defer svc.stop()
	setupLine(fmt.Sprintf("%d tasks seeded in %s (90%% in tenant bench)", *rows, seeded.Round(time.Second)), "commonops roles=api on PostgreSQL", "sequential requests over loopback")

	queries := []struct{ name, query string }{
		{"status=failed&taskType=export", "status=failed&taskType=export&pageSize=20"},
		{"status=completed,failed page 50", "status=completed,failed&page=50&pageSize=20"},
		{"taskType=export", "taskType=export&pageSize=20"},
		{"entityType=order&sort=-createdAt", "entityType=order&sort=-createdAt&pageSize=50"},
		{"requestedBy=user7, last 30 days", "requestedBy=user7&startDate=" + time.Now().AddDate(0, 0, -30).Format("2006-01-02") + "&pageSize=20"},
		{"no filter, newest first", "pageSize=20"},
	}
	for _, q := range queries {
		lat, err := timedGets(svc.base+"/api/v1/operations/tasks?"+q.query, 60, 10)
		if err != nil {
			return fmt.Errorf("list %s: %w", q.query, err)
		}
		p99 := percentile(lat, .99)
		fmt.Printf("list %-36s p50 %s, p99 %s   goal < 50 ms: %s\n", q.name, ms(percentile(lat, .5)), ms(p99), verdict(p99 < 50*time.Millisecond))
	}
	return nil
}
