package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// listTenantEvents calls ListTenantEvents and fails the test on error.
func listTenantEvents(t *testing.T, s store.Store, f commonops.EventFilter) []commonops.Event {
	t.Helper()
	events, err := s.ListTenantEvents(context.Background(), f)
	if err != nil {
		t.Fatalf("ListTenantEvents(%+v): %v", f, err)
	}
	return events
}

// eventIDs are the ids of events.
func eventIDs(events []commonops.Event) []int64 {
	ids := make([]int64, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

var tenantEventsTests = []test{
	{"CarryTheTaskKindStatusAndRequester", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "export", EntityType: "order", RequestedBy: ptr("alice")})
		claim(t, s, tk, at(1))
		if _, err := s.ClaimTask(context.Background(), tenantA, tk.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(2)}); err == nil {
			t.Fatal("ClaimTask of a processing task: got nil error, want a conflict")
		}
		other := create(t, s, tenantA, at(3), commonops.CreateInput{})
		if _, err := s.ClaimTask(context.Background(), tenantA, other.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(4)}); err != nil {
			t.Fatalf("ClaimTask: %v", err)
		}
		third := create(t, s, tenantA, at(5), commonops.CreateInput{TaskType: "sync"})
		if got := claimNext(t, s, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(6), Limit: 1}); len(got) != 1 || got[0].ID != third.ID {
			t.Fatalf("ClaimNext: got %d tasks, want task %s", len(got), third.ID)
		}
		cur := get(t, s, tenantA, tk.ID)
		if _, err := s.UpdateTaskFrom(context.Background(), cur, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(at(7)) }); err != nil {
			t.Fatalf("UpdateTaskFrom: %v", err)
		}
		type row struct {
			task, taskType, entityType, requester string
			status                                commonops.Status
			typ                                   string
		}
		want := []row{
			{tk.ID, "export", "order", "alice", commonops.StatusPending, commonops.EventCreated},          // CreateTask
			{tk.ID, "export", "order", "alice", commonops.StatusProcessing, commonops.EventStarted},       // UpdateTask
			{other.ID, "import", "product", "user-1", commonops.StatusPending, commonops.EventCreated},    // CreateTask
			{other.ID, "import", "product", "user-1", commonops.StatusProcessing, commonops.EventStarted}, // ClaimTask
			{third.ID, "sync", "product", "user-1", commonops.StatusPending, commonops.EventCreated},
			{third.ID, "sync", "product", "user-1", commonops.StatusProcessing, commonops.EventStarted}, // ClaimNext
			{tk.ID, "export", "order", "alice", commonops.StatusCancelled, commonops.EventCancelled},    // UpdateTaskFrom
		}
		events := listTenantEvents(t, s, commonops.EventFilter{TenantID: tenantA})
		if len(events) != len(want) {
			t.Fatalf("got %d events, want %d", len(events), len(want))
		}
		for i, e := range events {
			got := row{e.TaskID, e.TaskType, e.EntityType, e.RequestedBy, e.Status, e.EventType}
			if got != want[i] {
				t.Errorf("event %d: got %+v, want %+v", i, got, want[i])
			}
		}
		// The feed's read and the task's history carry the same fields.
		all, _ := listEventsAfter(t, s, 0, 100)
		own, err := s.ListEvents(context.Background(), tenantA, tk.ID, 0, 10)
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		if len(all) != len(events) || all[6].Status != commonops.StatusCancelled || all[6].TaskType != "export" || all[6].RequestedBy != "alice" {
			t.Errorf("ListEventsAfter: got %+v, want the same events with their fields", all)
		}
		if len(own) != 3 || own[2].Status != commonops.StatusCancelled || own[2].EntityType != "order" {
			t.Errorf("ListEvents: got %+v, want 3 events, the last cancelled of entity type order", own)
		}
	}},
	{"Filters", func(t *testing.T, s store.Store) {
		a := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "export", EntityType: "order", RequestedBy: ptr("alice")})
		b := create(t, s, tenantA, at(1), commonops.CreateInput{TaskType: "import", EntityType: "order", RequestedBy: ptr("bob")})
		c := create(t, s, tenantA, at(2), commonops.CreateInput{TaskType: "export", EntityType: "product", RequestedBy: ptr("bob")})
		create(t, s, tenantB, at(3), commonops.CreateInput{TaskType: "export", EntityType: "order", RequestedBy: ptr("alice")})
		claim(t, s, a, at(4))
		cancel(t, s, b, at(5))
		all := listTenantEvents(t, s, commonops.EventFilter{TenantID: tenantA})
		if len(all) != 5 {
			t.Fatalf("tenant A: got %d events, want 5 (none of tenant B)", len(all))
		}
		id := func(i int) int64 { return all[i].ID } // a, b, c created; a started; b cancelled
		tests := []struct {
			name string
			f    commonops.EventFilter
			want []int64
		}{
			{"TaskType", commonops.EventFilter{TaskType: "export"}, []int64{id(0), id(2), id(3)}},
			{"EntityType", commonops.EventFilter{EntityType: "order"}, []int64{id(0), id(1), id(3), id(4)}},
			{"Status", commonops.EventFilter{Statuses: []commonops.Status{commonops.StatusProcessing, commonops.StatusCancelled}}, []int64{id(3), id(4)}},
			{"RequestedBy", commonops.EventFilter{RequestedBy: "bob"}, []int64{id(1), id(2), id(4)}},
			{"Combined", commonops.EventFilter{TaskType: "export", EntityType: "order", RequestedBy: "alice", Statuses: []commonops.Status{commonops.StatusPending}}, []int64{id(0)}},
			{"AfterAndLimit", commonops.EventFilter{AfterID: id(0), Limit: 2}, []int64{id(1), id(2)}},
			{"NoMatch", commonops.EventFilter{TaskType: "none"}, []int64{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := tc.f
				f.TenantID = tenantA
				got := eventIDs(listTenantEvents(t, s, f))
				if len(got) != len(tc.want) {
					t.Fatalf("got ids %v, want %v", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Fatalf("got ids %v, want %v", got, tc.want)
					}
				}
				for _, e := range listTenantEvents(t, s, f) {
					if !f.Match(e) {
						t.Errorf("event %d: EventFilter.Match got false for an event the store selected", e.ID)
					}
				}
			})
		}
		_ = c
	}},
	{"DeletedTaskTakesItsEvents", func(t *testing.T, s store.Store) {
		gone := cancel(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))
		kept := create(t, s, tenantA, at(2), commonops.CreateInput{})
		if _, err := s.DeleteTask(context.Background(), tenantA, gone.ID); err != nil {
			t.Fatalf("DeleteTask: %v", err)
		}
		events := listTenantEvents(t, s, commonops.EventFilter{TenantID: tenantA})
		if len(events) != 1 || events[0].TaskID != kept.ID {
			t.Fatalf("after a delete: got %+v, want only the created event of %s", events, kept.ID)
		}
	}},
}

// EventKindsBackfill checks the migration that added the task's kind,
// status and requester to task_events: it records a task's history, calls
// remigrate, which must take the columns away, forget the migration and
// apply it again, and wants the history's fields filled from the task and
// each event's "to".
func EventKindsBackfill(t *testing.T, s store.Store, remigrate func(ctx context.Context) error) {
	t.Helper()
	ctx := context.Background()
	tk := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "export", EntityType: "order", RequestedBy: ptr("alice")})
	claim(t, s, tk, at(1))
	cancel(t, s, tk, at(2))
	if err := remigrate(ctx); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	events := listTenantEvents(t, s, commonops.EventFilter{TenantID: tenantA})
	want := []commonops.Status{commonops.StatusPending, commonops.StatusProcessing, commonops.StatusCancelled}
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d", len(events), len(want))
	}
	for i, e := range events {
		if e.TaskType != "export" || e.EntityType != "order" || e.RequestedBy != "alice" || e.Status != want[i] {
			t.Errorf("event %d after the migration: got %s/%s by %q, %s; want export/order by alice, %s",
				i, e.TaskType, e.EntityType, e.RequestedBy, e.Status, want[i])
		}
	}
}
