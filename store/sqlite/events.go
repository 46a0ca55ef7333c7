package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/commonops/commonops"
)

// eventColumns are the task_events columns every event read selects, in
// appendEvents' order.
const eventColumns = `id, tenant_id, task_id, task_type, entity_type, status, requested_by, event_type, event_data, created_at`

// appendEvents scans rows of eventColumns onto events and closes rows.
func appendEvents(events []commonops.Event, rows *sql.Rows) ([]commonops.Event, error) {
	defer rows.Close()
	for rows.Next() {
		var (
			e       commonops.Event
			data    string
			created int64
		)
		if err := rows.Scan(&e.ID, &e.TenantID, &e.TaskID, &e.TaskType, &e.EntityType, &e.Status, &e.RequestedBy, &e.EventType, &data, &created); err != nil {
			return events, err
		}
		e.EventData, e.CreatedAt = json.RawMessage(data), fromMicros(created)
		events = append(events, e)
	}
	return events, rows.Err()
}

// ListTenantEvents returns up to f.Limit events of f.TenantID with an id
// above f.AfterID that match f, oldest first (a limit of 0 or less means
// commonops.PageSizeMax), walking the task_events_tenant index.
func (s *Store) ListTenantEvents(ctx context.Context, f commonops.EventFilter) ([]commonops.Event, error) {
	limit := f.Limit
	if limit <= 0 || limit > commonops.PageSizeMax {
		limit = commonops.PageSizeMax
	}
	where := []string{"tenant_id = ?", "id > ?"}
	args := []any{f.TenantID, f.AfterID}
	for _, c := range []struct{ col, v string }{{"task_type", f.TaskType}, {"entity_type", f.EntityType}, {"requested_by", f.RequestedBy}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	args = append(args, limit)
	events := []commonops.Event{}
	err := s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT "+eventColumns+" FROM task_events WHERE "+strings.Join(where, " AND ")+" ORDER BY id LIMIT ?", args...)
		if err != nil {
			return err
		}
		events, err = appendEvents(events, rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list events of tenant %s after %d: %w", f.TenantID, f.AfterID, err)
	}
	return events, nil
}
