package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/commonops/commonops"
)

// ListEventsAfter returns up to limit events of every task with id >
// afterID in id order (the rowid), and the largest event id (a limit of 0
// or less means commonops.PageSizeMax), from one read transaction.
//
// Write transactions are serialised (BEGIN IMMEDIATE, one writer), so ids
// are taken in commit order: a reader that has seen id N will never see a
// smaller id appear later.
func (s *Store) ListEventsAfter(ctx context.Context, afterID int64, limit int) ([]commonops.Event, int64, error) {
	if limit <= 0 {
		limit = commonops.PageSizeMax
	}
	events := []commonops.Event{}
	var last int64
	err := s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM task_events").Scan(&last); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT "+eventColumns+" FROM task_events WHERE id > ? ORDER BY id LIMIT ?",
			afterID, limit)
		if err != nil {
			return err
		}
		events, err = appendEvents(events, rows)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list events after %d: %w", afterID, err)
	}
	return events, last, nil
}

// CommitSignal returns a channel of its own that receives (without blocking
// the sender) after a commit of this store that wrote task events; stop
// unregisters it. The event feed (feed.Feed) waits on it.
func (s *Store) CommitSignal() (signal <-chan struct{}, stop func()) {
	return s.commits.Subscribe()
}
