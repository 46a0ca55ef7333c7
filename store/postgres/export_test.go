package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// GroupWrite is one statement of a group sent with SendGroup.
type GroupWrite struct {
	Ctx  context.Context // nil: the test's
	Key  string
	SQL  string
	Args []any
	Scan func(pgx.Row) error
	// LockTask: the task whose type's flow lock the statement needs first.
	LockTask string
}

// SendGroup sends ws as one write group, as the flushers would had they
// arrived together, and returns each write's result.
func (s *Store) SendGroup(ctx context.Context, ws []GroupWrite) []error {
	group := make([]*write, len(ws))
	for i, w := range ws {
		group[i] = &write{ctx: ctx, key: w.Key, sql: w.SQL, args: w.Args, scan: w.Scan, done: make(chan error, 1), lockTask: w.LockTask}
		if w.Ctx != nil {
			group[i].ctx = w.Ctx
		}
	}
	s.sendGroup(group, pgtype.NewMap())
	errs := make([]error, len(ws))
	for i, w := range group {
		errs[i] = <-w.done
	}
	return errs
}

// QueryRow is queryRow, the way the store's writes hand a statement over.
func (s *Store) QueryRow(ctx context.Context, key, sql string, args []any, scan func(pgx.Row) error) error {
	return s.queryRow(ctx, key, sql, args, scan)
}

// ReadForTest runs query, whose result it discards, the way the store's
// bounded reads run theirs.
func (s *Store) ReadForTest(ctx context.Context, query string) error {
	return s.read(ctx, func(b *pgx.Batch) { b.Queue(query) }, func(br pgx.BatchResults) error {
		_, err := br.Exec()
		return err
	})
}
