package operations

import (
	"context"

	"github.com/commonops/commonops"
)

// EventProblems returns what is wrong with f, field by field: the bounds
// TenantEvents holds every caller to. httpapi reports them with the
// problems of reading its query string.
func EventProblems(f commonops.EventFilter) []commonops.FieldError {
	var fe fieldErrors
	checkLen(&fe, "taskType", f.TaskType, commonops.MaxNameLen)
	checkLen(&fe, "entityType", f.EntityType, commonops.MaxNameLen)
	checkLen(&fe, "requestedBy", f.RequestedBy, commonops.MaxRequestedByLen)
	for _, st := range f.Statuses {
		if !st.Valid() {
			fe.add("status", "unknown status %q; valid statuses are %s", commonops.Shorten(string(st), 32), joinStatuses())
		}
	}
	if f.Limit < 0 || f.Limit > commonops.PageSizeMax {
		fe.add("limit", "must be an integer from %d to %d", 1, commonops.PageSizeMax)
	}
	if f.AfterID < 0 {
		fe.add("after", "must be the id of an event (0 or more)")
	}
	return fe
}

// ScopeEvents returns f narrowed to ctx's scope: a submitter's
// (Scope.OwnedBy) reaches only the events of the tasks it requested.
// A tenant stream must follow the feed with the narrowed filter too, so that
// its live events and its replay select the same ones. ok is false when f
// asks for another requester's events, which the scope reaches none of.
func ScopeEvents(ctx context.Context, f commonops.EventFilter) (_ commonops.EventFilter, ok bool) {
	sc := scopeOf(ctx)
	if sc.OwnedBy == "" {
		return f, true
	}
	if f.RequestedBy != "" && f.RequestedBy != sc.OwnedBy {
		return f, false
	}
	f.RequestedBy = sc.OwnedBy
	return f, true
}

// TenantEvents returns up to f.Limit events of f.TenantID after f.AfterID
// that match f, oldest first, within ctx's scope (see ScopeEvents).
func (s *Service) TenantEvents(ctx context.Context, f commonops.EventFilter) ([]commonops.Event, error) {
	if fe := EventProblems(f); len(fe) > 0 {
		return nil, commonops.Invalid(fe...)
	}
	f, ok := ScopeEvents(ctx, f)
	if !ok {
		return []commonops.Event{}, nil
	}
	return s.Store.ListTenantEvents(ctx, f)
}
