package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchConsole measures the console's task-list page (the list, and the
// count of each status under the same filters, rendered as HTML) over
// *rows tasks on PostgreSQL, as the list benchmark seeds them. The seed is
// its own copy so that either benchmark can change its data alone.
func benchConsole(ctx context.Context) error {
	dbURL, err := freshDatabase(ctx, "commonops_bench_console")
	if err != nil {
		return err
	}
	svc, err := startService(ctx, "COMMONOPS_DATABASE_URL="+dbURL, "COMMONOPS_ROLES=api")
	if err != nil {
		return err
	}
	defer svc.stop()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
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
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE tasks"); err != nil {
		return err
	}
	setupLine(fmt.Sprintf("%d tasks seeded in %s (90%% in tenant bench)", *rows, time.Since(t0).Round(time.Second)),
		"commonops roles=api on PostgreSQL", "GET /console/tasks: a page of 25 and 6 status counts (capped at 10,000), as HTML", "sequential requests over loopback")
	pages := []struct{ name, query string }{
		{"no filter", ""},
		{"status=failed&taskType=export", "status=failed&taskType=export"},
		{"taskType=import page 40", "taskType=import&page=40"},
		{"requestedBy=user7, from 30 days ago", "requestedBy=user7&from=" + time.Now().AddDate(0, 0, -30).UTC().Format("2006-01-02T15:04")},
		{"entityType=order&status=completed", "entityType=order&status=completed"},
	}
	for _, p := range pages {
		var lat []time.Duration
		for i := range 40 {
			t := time.Now()
			resp, err := get(svc.base + "/console/tasks?" + p.query)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("console %s: %d", p.query, resp.StatusCode)
			}
			if i >= 5 { // the first requests warm the cache
				lat = append(lat, time.Since(t))
			}
		}
		p99 := percentile(lat, .99)
		fmt.Printf("console %-38s p50 %s, p99 %s   goal < 150 ms: %s\n", p.name, ms(percentile(lat, .5)), ms(p99), verdict(p99 < 150*time.Millisecond))
	}
	return nil
}
