package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops/store"
)

// readTimeoutSlack is how much longer than its statement timeout a read's
// context lives: only a server that stopped answering altogether reaches
// it, and the read is then EUNAVAILABLE like any lost connection.
const readTimeoutSlack = time.Second

// read runs the statements queue adds in one read-only transaction whose
// statements the server stops after the read timeout, all in one round
// trip, and lets fn read their results in order.
//
// The bound is SET LOCAL statement_timeout, not a context deadline: pgx
// answers a deadline by closing the connection, and PostgreSQL goes on
// running a query whose client left until it next writes to it, which a
// search that matches nothing never does. The connection is acquired
// rather than borrowed by the batch, so a read that fails (its
// transaction aborted) is rolled back and the connection kept.
//
// One wait escapes the statement timeout: pgx prepares a statement new to
// the connection in a round trip before the batch runs, and that prepare
// waits for an ACCESS EXCLUSIVE lock (a migration's) before SET LOCAL has
// run. The context deadline (timeout plus readTimeoutSlack) bounds it, and
// the read answers EUNAVAILABLE as for a lost connection. The scans
// themselves always run under the timeout.
func (s *Store) read(ctx context.Context, queue func(*pgx.Batch), fn func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN READ ONLY")
	head := 1
	if s.readTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.readTimeout+readTimeoutSlack)
		defer cancel()
		b.Queue(fmt.Sprintf("SET LOCAL statement_timeout = %d", max(s.readTimeout.Milliseconds(), 1)))
		head++
	}
	queue(b)
	b.Queue("COMMIT")
	tc, err := s.acquire(ctx)
	if err != nil {
		return interpretError(err)
	}
	defer tc.release()
	br := tc.c.SendBatch(ctx, b)
	for range head {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if err == nil {
		err = fn(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if isCode(err, codeQueryCanceled) {
		return store.ReadTimeoutError(s.readTimeout, err)
	}
	return interpretError(err)
}
