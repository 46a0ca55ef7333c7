package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
)

// listEventsAfterSQL walks task_events by its primary key.
const listEventsAfterSQL = `SELECT ` + eventColumns + `
	FROM task_events WHERE id > $1 ORDER BY id LIMIT $2`

// lastEventSQL is the head of task_events: a backward step on the primary key.
const lastEventSQL = `SELECT coalesce(max(id), 0) FROM task_events`

// ListEventsAfter returns up to limit events of every task with id >
// afterID in id order, and the largest event id (a limit of 0 or less means
// commonops.PageSizeMax). Both come from one snapshot, in one round trip.
//
// bigserial ids are taken at insert, not at commit, so a row may become
// visible after rows with larger ids; the reader (feed.Feed) holds back at
// a gap until it fills or is old enough to be a rolled-back insert.
func (s *Store) ListEventsAfter(ctx context.Context, afterID int64, limit int) ([]commonops.Event, int64, error) {
	if limit <= 0 {
		limit = commonops.PageSizeMax
	}
	events := []commonops.Event{}
	var last int64
	err := s.read(ctx, func(b *pgx.Batch) {
		b.Queue(lastEventSQL)
		b.Queue(listEventsAfterSQL, afterID, limit)
	}, func(br pgx.BatchResults) error {
		if err := br.QueryRow().Scan(&last); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		events, err = pgx.AppendRows(events, rows, scanEvent)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list events after %d: %w", afterID, err)
	}
	return events, last, nil
}

// CommitSignal returns a channel of its own that receives (without blocking
// the sender) after a commit of this process that wrote task events, and
// after another replica's outbox NOTIFY (events written with no outbox row
// elsewhere, such as a claim's, are seen at the reader's next poll). stop
// unregisters it. The event feed (feed.Feed) waits on it.
func (s *Store) CommitSignal() (signal <-chan struct{}, stop func()) {
	return s.commits.Subscribe()
}
