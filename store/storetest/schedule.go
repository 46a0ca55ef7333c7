package storetest

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// newSchedule stores sc as a new schedule of tenant, filling the fields
// it leaves unset (created at 0s).
func newSchedule(t *testing.T, s store.Store, tenant string, in commonops.Schedule) *commonops.Schedule {
	t.Helper()
	sc := in.Clone()
	if sc.ID == "" {
		sc.ID = uuid.Must(uuid.NewV7()).String()
	}
	sc.TenantID = tenant
	if sc.Cron == "" {
		sc.Cron, sc.TimeZone = "0 2 * * *", "Europe/Paris"
	}
	if sc.Template.TaskType == "" {
		sc.Template = commonops.ScheduleTemplate{TaskType: "export", EntityType: "product", Params: json.RawMessage(`{"format":"csv"}`)}
	}
	if sc.Overlap == "" {
		sc.Overlap, sc.MissedRuns = commonops.OverlapSkip, commonops.MissedSkip
	}
	if sc.CreatedAt.IsZero() {
		sc.CreatedAt = at(0)
	}
	sc.CreatedBy, sc.UpdatedAt, sc.Version = "user-1", sc.CreatedAt, 1
	if err := s.CreateSchedule(context.Background(), sc); err != nil {
		t.Fatalf("CreateSchedule: %v", err)
	}
	return sc
}

// scheduleAt is a schedule due at next seconds.
func scheduleAt(next int) commonops.Schedule {
	return commonops.Schedule{NextRunAt: ptr(at(next))}
}

// fireTask is the task a tick of sc creates at now, with its change.
func fireTask(t *testing.T, sc *commonops.Schedule, now int) (*commonops.Task, commonops.Change) {
	t.Helper()
	return newTask(t, sc.TenantID, at(now), sc.Template.Input())
}

var scheduleTests = []test{
	{"RoundTrip", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		want := newSchedule(t, s, tenantA, commonops.Schedule{
			Cron: "*/5 * * * 1-5", TimeZone: "America/New_York",
			Template: commonops.ScheduleTemplate{TaskType: "import", EntityType: "order", Params: json.RawMessage(`{"b":1,"a":[2]}`),
				MaxRetries: ptr(7), Priority: ptr(-3)},
			Overlap: commonops.OverlapAllow, MissedRuns: commonops.MissedRunOnce,
			NextRunAt: ptr(at(60)), LastRunAt: ptr(at(-60)), LastTaskID: ptr("t-1"),
		})
		got, err := s.GetSchedule(ctx, tenantA, want.ID)
		if err != nil {
			t.Fatalf("GetSchedule: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GetSchedule: got %+v, want %+v", got, want)
		}
		bare := newSchedule(t, s, tenantA, commonops.Schedule{CreatedAt: at(1), Paused: true})
		got, err = s.GetSchedule(ctx, tenantA, bare.ID)
		if err != nil {
			t.Fatalf("GetSchedule: %v", err)
		}
		if !reflect.DeepEqual(got, bare) {
			t.Fatalf("GetSchedule of a paused schedule without times: got %+v, want %+v", got, bare)
		}
	}},
	{"TenantIsolation", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		sc := newSchedule(t, s, tenantA, scheduleAt(60))
		if _, err := s.GetSchedule(ctx, tenantB, sc.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("GetSchedule from another tenant: got %v, want ENOTFOUND", err)
		}
		if _, err := s.UpdateSchedule(ctx, tenantB, sc.ID, func(*commonops.Schedule) error { return nil }); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("UpdateSchedule from another tenant: got %v, want ENOTFOUND", err)
		}
		if err := s.DeleteSchedule(ctx, tenantB, sc.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("DeleteSchedule from another tenant: got %v, want ENOTFOUND", err)
		}
		list, err := s.ListSchedules(ctx, tenantB, "", 10)
		if err != nil || len(list) != 0 {
			t.Fatalf("ListSchedules of another tenant: got %d, %v, want none", len(list), err)
		}
		ok, err := s.FireSchedule(ctx, store.ScheduleFire{TenantID: tenantB, ID: sc.ID, Tick: at(60), Next: at(120), Now: at(60)})
		if err != nil || ok {
			t.Fatalf("FireSchedule from another tenant: got %v, %v, want false, nil", ok, err)
		}
	}},
	{"DuplicateIsConflict", func(t *testing.T, s store.Store) {
		sc := newSchedule(t, s, tenantA, scheduleAt(60))
		if err := s.CreateSchedule(context.Background(), sc); commonops.ErrorCode(err) != commonops.ECONFLICT {
			t.Fatalf("CreateSchedule of a taken id: got %v, want ECONFLICT", err)
		}
	}},
	{"ListPages", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		var want []string
		for range 5 {
			want = append(want, newSchedule(t, s, tenantA, scheduleAt(60)).ID)
		}
		newSchedule(t, s, tenantB, scheduleAt(60))
		var got []string
		after := ""
		for {
			page, err := s.ListSchedules(ctx, tenantA, after, 2)
			if err != nil {
				t.Fatalf("ListSchedules: %v", err)
			}
			for _, sc := range page {
				got = append(got, sc.ID)
			}
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].ID
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ListSchedules by pages of 2: got %v, want %v", got, want)
		}
	}},
	{"Update", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		sc := newSchedule(t, s, tenantA, scheduleAt(60))
		saved, err := s.UpdateSchedule(ctx, tenantA, sc.ID, func(c *commonops.Schedule) error {
			c.Cron, c.Paused, c.NextRunAt, c.UpdatedAt = "0 3 * * *", true, nil, at(5)
			c.Template.Params = json.RawMessage(`{"z":true}`)
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateSchedule: %v", err)
		}
		if saved.Version != sc.Version+1 || saved.Cron != "0 3 * * *" || !saved.Paused || saved.NextRunAt != nil {
			t.Fatalf("UpdateSchedule: got %+v, want version %d, the new cron, paused, no next run", saved, sc.Version+1)
		}
		got, err := s.GetSchedule(ctx, tenantA, sc.ID)
		if err != nil || !reflect.DeepEqual(got, saved) {
			t.Fatalf("GetSchedule after UpdateSchedule: got %+v, %v, want %+v", got, err, saved)
		}
		refused := commonops.Errorf(commonops.EINVALID, "no")
		if _, err := s.UpdateSchedule(ctx, tenantA, sc.ID, func(c *commonops.Schedule) error { c.Cron = "x"; return refused }); err != refused {
			t.Fatalf("UpdateSchedule whose fn fails: got %v, want fn's error", err)
		}
		if got, _ := s.GetSchedule(ctx, tenantA, sc.ID); !reflect.DeepEqual(got, saved) {
			t.Fatalf("schedule after a refused update: got %+v, want %+v", got, saved)
		}
		if _, err := s.UpdateSchedule(ctx, tenantA, "nope", func(*commonops.Schedule) error { return nil }); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("UpdateSchedule of an unknown id: got %v, want ENOTFOUND", err)
		}
	}},
	{"Delete", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		sc := newSchedule(t, s, tenantA, scheduleAt(60))
		if err := s.DeleteSchedule(ctx, tenantA, sc.ID); err != nil {
			t.Fatalf("DeleteSchedule: %v", err)
		}
		if _, err := s.GetSchedule(ctx, tenantA, sc.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("GetSchedule after delete: got %v, want ENOTFOUND", err)
		}
		if err := s.DeleteSchedule(ctx, tenantA, sc.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("DeleteSchedule again: got %v, want ENOTFOUND", err)
		}
	}},
	{"Due", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		late := newSchedule(t, s, tenantB, scheduleAt(10))
		early := newSchedule(t, s, tenantA, scheduleAt(5))
		onTime := newSchedule(t, s, tenantA, scheduleAt(30))
		newSchedule(t, s, tenantA, scheduleAt(31))                                          // not yet
		newSchedule(t, s, tenantA, commonops.Schedule{Paused: true, NextRunAt: ptr(at(1))}) // paused
		got, err := s.DueSchedules(ctx, at(30), 10)
		if err != nil {
			t.Fatalf("DueSchedules: %v", err)
		}
		var ids []string
		for _, sc := range got {
			ids = append(ids, sc.ID)
		}
		if want := []string{early.ID, late.ID, onTime.ID}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("DueSchedules at 30s: got %v, want %v (earliest first, none paused or later)", ids, want)
		}
		if got, err := s.DueSchedules(ctx, at(30), 1); err != nil || len(got) != 1 || got[0].ID != early.ID {
			t.Fatalf("DueSchedules with limit 1: got %v, %v, want [%s]", got, err, early.ID)
		}
	}},
	{"Fire", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		sc := newSchedule(t, s, tenantA, scheduleAt(60))
		tk, ch := fireTask(t, sc, 61)
		ok, err := s.FireSchedule(ctx, store.ScheduleFire{TenantID: tenantA, ID: sc.ID, Tick: at(60), Next: at(120), Now: at(61), Task: tk, Change: ch})
		if err != nil || !ok {
			t.Fatalf("FireSchedule: got %v, %v, want true", ok, err)
		}
		got, err := s.GetSchedule(ctx, tenantA, sc.ID)
		if err != nil {
			t.Fatalf("GetSchedule: %v", err)
		}
		if !got.NextRunAt.Equal(at(120)) || !got.LastRunAt.Equal(at(60)) || got.LastTaskID == nil || *got.LastTaskID != tk.ID ||
			got.Version != sc.Version+1 || !got.UpdatedAt.Equal(at(61)) {
			t.Fatalf("schedule after a tick: got %+v, want next 120s, last 60s, last task %s, version %d", got, tk.ID, sc.Version+1)
		}
		stored, err := s.GetTask(ctx, tenantA, tk.ID)
		if err != nil || stored.TaskType != "export" || stored.Status != commonops.StatusPending {
			t.Fatalf("the tick's task: got %+v, %v, want a pending export", stored, err)
		}
		events, err := s.ListEvents(ctx, tenantA, tk.ID, 0, 10)
		if err != nil || len(events) != 1 || events[0].EventType != commonops.EventCreated {
			t.Fatalf("the tick's task events: got %+v, %v, want one created event", events, err)
		}
		// The same tick again (another replica) and a stale one fire nothing.
		tk2, ch2 := fireTask(t, sc, 61)
		for _, tick := range []int{60, 30} {
			ok, err = s.FireSchedule(ctx, store.ScheduleFire{TenantID: tenantA, ID: sc.ID, Tick: at(tick), Next: at(120), Now: at(62), Task: tk2, Change: ch2})
			if err != nil || ok {
				t.Fatalf("FireSchedule of tick %ds once fired: got %v, %v, want false", tick, ok, err)
			}
		}
		if _, err := s.GetTask(ctx, tenantA, tk2.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("task of a tick not fired: got %v, want ENOTFOUND", err)
		}
		// A tick without a task advances the schedule and keeps the last task.
		ok, err = s.FireSchedule(ctx, store.ScheduleFire{TenantID: tenantA, ID: sc.ID, Tick: at(120), Next: at(180), Now: at(121)})
		if err != nil || !ok {
			t.Fatalf("FireSchedule without a task: got %v, %v, want true", ok, err)
		}
		got, _ = s.GetSchedule(ctx, tenantA, sc.ID)
		if !got.NextRunAt.Equal(at(180)) || !got.LastRunAt.Equal(at(120)) || *got.LastTaskID != tk.ID {
			t.Fatalf("schedule after a skipped tick: got %+v, want next 180s, last 120s, last task %s", got, tk.ID)
		}
	}},
	{"FirePaused", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		sc := newSchedule(t, s, tenantA, commonops.Schedule{Paused: true, NextRunAt: ptr(at(60))})
		tk, ch := fireTask(t, sc, 61)
		ok, err := s.FireSchedule(ctx, store.ScheduleFire{TenantID: tenantA, ID: sc.ID, Tick: at(60), Next: at(120), Now: at(61), Task: tk, Change: ch})
		if err != nil || ok {
			t.Fatalf("FireSchedule of a paused schedule: got %v, %v, want false", ok, err)
		}
		if _, err := s.GetTask(ctx, tenantA, tk.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("task of a paused schedule: got %v, want ENOTFOUND", err)
		}
	}},
	{"FireRace", func(t *testing.T, s store.Store) {
		// Eight firers of the same tick, as eight replicas: one task.
		ctx := context.Background()
		sc := newSchedule(t, s, tenantA, scheduleAt(60))
		const n = 8
		var wg sync.WaitGroup
		fired := make(chan string, n)
		errs := make(chan error, n)
		for range n {
			tk, ch := fireTask(t, sc, 61)
			wg.Go(func() {
				ok, err := s.FireSchedule(ctx, store.ScheduleFire{TenantID: tenantA, ID: sc.ID, Tick: at(60), Next: at(120), Now: at(61), Task: tk, Change: ch})
				if err != nil {
					errs <- err
				}
				if ok {
					fired <- tk.ID
				}
			})
		}
		wg.Wait()
		close(fired)
		close(errs)
		for err := range errs {
			t.Fatalf("FireSchedule: %v", err)
		}
		var ids []string
		for id := range fired {
			ids = append(ids, id)
		}
		if len(ids) != 1 {
			t.Fatalf("%d firers of one tick: got %d fired, want 1", n, len(ids))
		}
		_, total, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: tenantA})
		if err != nil || total != 1 {
			t.Fatalf("tasks after %d firers of one tick: got %d, %v, want 1", n, total, err)
		}
	}},
}
