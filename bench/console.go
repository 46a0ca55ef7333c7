package main

import (
	"context"
	"fmt"
	"time"
)

// benchConsole measures the console's task-list page (the list, and the
// count of each status under the same filters, rendered as HTML) over
// *rows tasks on PostgreSQL, seeded as the list benchmark seeds them.
func benchConsole(ctx context.Context) error {
	svc, seeded, err := seededService(ctx, "commonops_bench_console")
	if err != nil {
		return err
	}
	defer svc.stop()
	setupLine(fmt.Sprintf("%d tasks seeded in %s (90%% in tenant bench)", *rows, seeded.Round(time.Second)),
		"commonops roles=api on PostgreSQL", "GET /console/tasks: a page of 25 (no total) and 6 status counts (capped at 1,000), as HTML", "sequential requests over loopback")
	pages := []struct{ name, query string }{
		{"no filter", ""},
		{"status=failed&taskType=export", "status=failed&taskType=export"},
		{"taskType=import page 40", "taskType=import&page=40"},
		{"requestedBy=user7, from 30 days ago", "requestedBy=user7&from=" + time.Now().AddDate(0, 0, -30).UTC().Format("2006-01-02T15:04")},
		{"entityType=order&status=completed", "entityType=order&status=completed"},
	}
	for _, p := range pages {
		lat, err := timedGets(svc.base+"/console/tasks?"+p.query, 40, 5)
		if err != nil {
			return fmt.Errorf("console %s: %w", p.query, err)
		}
		p99 := percentile(lat, .99)
		fmt.Printf("console %-38s p50 %s, p99 %s   goal < 150 ms: %s\n", p.name, ms(percentile(lat, .5)), ms(p99), verdict(p99 < 150*time.Millisecond))
	}
	return nil
}
