package operations

import (
	"context"

	"github.com/commonops/commonops"
)

// EventsAfter returns up to limit of a task's events with an id above
// afterID, oldest first; ENOTFOUND for an unknown task (the store tells in
// the same read). Unlike Events it does not read the task first: it is for
// a caller that reads the task anyway, such as an event stream that reads
// it before every poll, so a poll costs one read of the task and one of its
// events.
func (s *Service) EventsAfter(ctx context.Context, tenant, id string, afterID int64, limit int) ([]commonops.Event, error) {
	return s.Store.ListEvents(ctx, tenant, id, afterID, limit)
}

// Ping reports whether the task store answers: the database check of the
// health and readiness probes.
func (s *Service) Ping(ctx context.Context) error {
	return s.Store.Ping(ctx)
}
