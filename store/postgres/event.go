package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
)

// eventColumns are the task_events columns every event read selects, in
// scanEvent's order.
const eventColumns = `id, tenant_id, task_id, task_type, entity_type, status, requested_by, event_type, event_data, created_at`

// scanEvent scans one row of eventColumns.
func scanEvent(r pgx.CollectableRow) (commonops.Event, error) {
	var e commonops.Event
	var data []byte
	err := r.Scan(&e.ID, &e.TenantID, &e.TaskID, &e.TaskType, &e.EntityType, &e.Status, &e.RequestedBy, &e.EventType, &data, &e.CreatedAt)
	e.EventData, e.CreatedAt = rawJSON(data), e.CreatedAt.UTC()
	return e, err
}

// listTenantEventsSQL walks a tenant's events on task_events_tenant_idx;
// an empty filter parameter ($3..$6) does not filter.
const listTenantEventsSQL = `SELECT ` + eventColumns + `
	FROM task_events
	WHERE tenant_id = $1 AND id > $2
	  AND ($3 = '' OR task_type = $3) AND ($4 = '' OR entity_type = $4)
	  AND ($5 = '' OR requested_by = $5)
	  AND (cardinality($6::text[]) = 0 OR status = ANY ($6::text[]))
	ORDER BY id LIMIT $7`

// ListTenantEvents returns up to f.Limit events of f.TenantID with an id
// above f.AfterID that match f, oldest first (a limit of 0 or less means
// commonops.PageSizeMax).
func (s *Store) ListTenantEvents(ctx context.Context, f commonops.EventFilter) ([]commonops.Event, error) {
	limit := f.Limit
	if limit <= 0 || limit > commonops.PageSizeMax {
		limit = commonops.PageSizeMax
	}
	statuses := make([]string, len(f.Statuses))
	for i, st := range f.Statuses {
		statuses[i] = string(st)
	}
	events := []commonops.Event{}
	err := s.read(ctx, func(b *pgx.Batch) {
		b.Queue(listTenantEventsSQL, f.TenantID, f.AfterID, f.TaskType, f.EntityType, f.RequestedBy, statuses, limit)
	}, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		events, err = pgx.AppendRows(events, rows, scanEvent)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list events of tenant %s after %d: %w", f.TenantID, f.AfterID, err)
	}
	return events, nil
}
