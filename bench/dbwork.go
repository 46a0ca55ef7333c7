package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// dbWork is what PostgreSQL counted for one database (pg_stat_database):
// transactions and rows, to tell per task what the service asked of it.
type dbWork struct {
	commits, inserted, updated, deleted, returned, fetched int64
}

// statsFlush is how long a backend may keep its counts before it reports
// them: at most once a second while busy, and the services' pollers and
// maintenance end a transaction at least every two seconds.
const statsFlush = 2500 * time.Millisecond

// readDBWork reads the database's counts, after waiting statsFlush for
// the backends to report what they did.
func readDBWork(ctx context.Context, dbURL string) (dbWork, error) {
	time.Sleep(statsFlush)
	var w dbWork
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return w, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_returned, tup_fetched
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&w.commits, &w.inserted, &w.updated, &w.deleted, &w.returned, &w.fetched)
	return w, err
}

// printDBWork prints the counts per task.
func printDBWork(w dbWork, n int64) {
	if n == 0 {
		return
	}
	per := func(v int64) float64 { return float64(v) / float64(n) }
	fmt.Printf("  database a task: %.2f commits, %.2f inserted, %.2f updated, %.2f deleted, %.1f returned, %.1f fetched\n",
		per(w.commits), per(w.inserted), per(w.updated), per(w.deleted), per(w.returned), per(w.fetched))
}
