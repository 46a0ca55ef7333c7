package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
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
		rows, err := tx.QueryContext(ctx, "SELECT id, tenant_id, task_id, event_type, event_data, created_at FROM task_events WHERE id > ? ORDER BY id LIMIT ?",
			afterID, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				e       commonops.Event
				data    string
				created int64
			)
			if err := rows.Scan(&e.ID, &e.TenantID, &e.TaskID, &e.EventType, &data, &created); err != nil {
				return err
			}
			e.EventData, e.CreatedAt = json.RawMessage(data), fromMicros(created)
			events = append(events, e)
		}
		return rows.Err()
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
