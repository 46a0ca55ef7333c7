package storetest

import (
	"context"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// listEventsAfter calls ListEventsAfter and fails the test on error.
func listEventsAfter(t *testing.T, s store.Store, after int64, limit int) ([]commonops.Event, int64) {
	t.Helper()
	events, last, err := s.ListEventsAfter(context.Background(), after, limit)
	if err != nil {
		t.Fatalf("ListEventsAfter(%d, %d): %v", after, limit, err)
	}
	return events, last
}

var eventsAfterTests = []test{
	{"Empty", func(t *testing.T, s store.Store) {
		events, last := listEventsAfter(t, s, 0, 10)
		if len(events) != 0 || last != 0 {
			t.Fatalf("empty store: got %d events and last %d, want none and 0", len(events), last)
		}
	}},
	{"AcrossTasksAndTenantsInIDOrder", func(t *testing.T, s store.Store) {
		a := create(t, s, tenantA, at(0), commonops.CreateInput{})
		b := create(t, s, tenantB, at(1), commonops.CreateInput{})
		claim(t, s, a, at(2))
		cancel(t, s, b, at(3))
		events, last := listEventsAfter(t, s, 0, 100)
		want := []struct{ tenant, task, typ string }{
			{tenantA, a.ID, commonops.EventCreated},
			{tenantB, b.ID, commonops.EventCreated},
			{tenantA, a.ID, commonops.EventStarted},
			{tenantB, b.ID, commonops.EventCancelled},
		}
		if len(events) != len(want) {
			t.Fatalf("got %d events, want %d", len(events), len(want))
		}
		for i, e := range events {
			w := want[i]
			if e.TenantID != w.tenant || e.TaskID != w.task || e.EventType != w.typ {
				t.Errorf("event %d: got %s/%s %s, want %s/%s %s", i, e.TenantID, e.TaskID, e.EventType, w.tenant, w.task, w.typ)
			}
			if i > 0 && e.ID <= events[i-1].ID {
				t.Errorf("event %d: got id %d after %d, want increasing ids", i, e.ID, events[i-1].ID)
			}
			if len(e.EventData) == 0 || e.CreatedAt.IsZero() {
				t.Errorf("event %d: got data %q at %v, want both set", i, e.EventData, e.CreatedAt)
			}
		}
		if last != events[len(events)-1].ID {
			t.Errorf("last: got %d, want %d (the largest id)", last, events[len(events)-1].ID)
		}
		// The same events as each task's own history.
		own, err := s.ListEvents(context.Background(), tenantA, a.ID, 0, 10)
		if err != nil || len(own) != 2 {
			t.Fatalf("ListEvents of task a: got %v (err %v), want its 2 events", own, err)
		}
		if own[0].ID != events[0].ID || own[1].ID != events[2].ID || string(own[1].EventData) != string(events[2].EventData) {
			t.Errorf("ListEvents of task a: got ids %d, %d, want %d, %d with the same data", own[0].ID, own[1].ID, events[0].ID, events[2].ID)
		}
	}},
	{"PagesAfterAnID", func(t *testing.T, s store.Store) {
		for i := range 5 {
			create(t, s, tenantA, at(i), commonops.CreateInput{})
		}
		all, last := listEventsAfter(t, s, 0, 100)
		if len(all) != 5 {
			t.Fatalf("got %d events, want 5", len(all))
		}
		page, pageLast := listEventsAfter(t, s, all[1].ID, 2)
		if len(page) != 2 || page[0].ID != all[2].ID || page[1].ID != all[3].ID {
			t.Fatalf("page after %d limit 2: got %v, want ids %d, %d", all[1].ID, page, all[2].ID, all[3].ID)
		}
		if pageLast != last {
			t.Errorf("last with a limit: got %d, want %d (the store's largest id, not the page's)", pageLast, last)
		}
		tail, tailLast := listEventsAfter(t, s, last, 100)
		if len(tail) != 0 || tailLast != last {
			t.Errorf("after the last id: got %d events and last %d, want none and %d", len(tail), tailLast, last)
		}
	}},
}
