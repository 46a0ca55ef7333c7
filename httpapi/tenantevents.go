package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/feed"
	"github.com/commonops/commonops/operations"
)

// handleTenantEvents serves GET /events: every event of the tenant the
// caller may see (a submitter: its own tasks'), filtered by ?taskType=,
// ?entityType= and ?status= (a comma list; the task's status after the
// change), after ?after= (up to ?limit=) as JSON or, with Accept:
// text/event-stream, as a live Server-Sent Events stream that never ends
// by itself (see stream).
func handleTenantEvents(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		q := newQuery(r)
		after, limit, sse := eventsQuery(r, q)
		f := commonops.EventFilter{
			TenantID:   info(r).tenant,
			AfterID:    after,
			Limit:      limit,
			TaskType:   q.text("taskType"),
			EntityType: q.text("entityType"),
		}
		for _, part := range strings.Split(q.v.Get("status"), listStatusSplit) {
			st := commonops.Status(strings.TrimSpace(part))
			if st != "" && !slices.Contains(f.Statuses, st) {
				f.Statuses = append(f.Statuses, st)
			}
		}
		q.fields = append(q.fields, operations.EventProblems(f)...)
		if err := q.err(); err != nil {
			return err
		}
		if !sse {
			events, err := s.svc.TenantEvents(r.Context(), f)
			if err != nil {
				return err
			}
			s.writeEvents(w, r, events)
			return nil
		}
		f, _ = operations.ScopeEvents(r.Context(), f) // the route takes no requestedBy: never refused
		return s.stream(w, r, f.TenantID, after, &tenantEvents{s: s, f: f})
	})
}

// tenantEvents is the stream of a tenant's events that match f (already in
// the caller's scope): the feed's predicate is f.Match, the replay the
// store's filter of the same fields.
type tenantEvents struct {
	s *server
	f commonops.EventFilter
}

func (te *tenantEvents) filter() feed.Filter {
	return feed.Filter{TenantID: te.f.TenantID, Match: te.f.Match}
}

func (te *tenantEvents) open(_ context.Context, from int64) (int64, error) { return from, nil }

func (te *tenantEvents) replay(ctx context.Context, after int64) ([]commonops.Event, error) {
	f := te.f
	f.AfterID, f.Limit = after, eventsBatchMax
	return te.s.svc.TenantEvents(ctx, f)
}

func (te *tenantEvents) sent(commonops.Event) {}

func (te *tenantEvents) end(context.Context) (string, bool, error) { return "", false, nil }
