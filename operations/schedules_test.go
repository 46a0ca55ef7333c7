package operations_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// t0 is a minute boundary the schedule tests count from.
var t0 = time.Date(2030, 3, 4, 5, 0, 0, 0, time.UTC)

// onClock returns a copy of svc whose clock reads *clk.
func onClock(svc *operations.Service, clk *atomic.Int64) *operations.Service {
	c := *svc
	c.Now = func() time.Time { return time.Unix(0, clk.Load()).UTC() }
	return &c
}

func every5(over commonops.Overlap, missed commonops.MissedRuns) operations.ScheduleInput {
	return operations.ScheduleInput{
		Cron: "*/5 * * * *", TimeZone: "Europe/Paris", Overlap: over, MissedRuns: missed,
		Template: commonops.ScheduleTemplate{TaskType: "export", EntityType: "product", Params: []byte(`{ "format": "csv" }`)},
	}
}

func fireAt(t *testing.T, svc *operations.Service, clk *atomic.Int64, at time.Time) []operations.Fired {
	t.Helper()
	clk.Store(at.UnixNano())
	fired, err := svc.FireDue(context.Background(), at, 10)
	if err != nil {
		t.Fatalf("FireDue at %s: %v", at, err)
	}
	return fired
}

func TestScheduleCreateRefuses(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		good := every5("", "")
		tests := []struct {
			name  string
			edit  func(in *operations.ScheduleInput)
			field string
		}{
			{"bad cron", func(in *operations.ScheduleInput) { in.Cron = "* * *" }, "cron"},
			{"bad zone", func(in *operations.ScheduleInput) { in.TimeZone = "Europe/Atlantis" }, "timeZone"},
			{"bad overlap", func(in *operations.ScheduleInput) { in.Overlap = "queue" }, "overlap"},
			{"bad missed runs", func(in *operations.ScheduleInput) { in.MissedRuns = "all" }, "missedRuns"},
			{"template without a type", func(in *operations.ScheduleInput) { in.Template.TaskType = "" }, "template.taskType"},
			{"template priority out of range", func(in *operations.ScheduleInput) { in.Template.Priority = ptr(5000) }, "template.priority"},
			{"template params not an object", func(in *operations.ScheduleInput) { in.Template.Params = []byte(`[1]`) }, "template.params"},
			{"template timeoutSeconds 0", func(in *operations.ScheduleInput) { in.Template.TimeoutSeconds = ptr(0) }, "template.timeoutSeconds"},
			{"template timeoutSeconds over 7 days", func(in *operations.ScheduleInput) { in.Template.TimeoutSeconds = ptr(commonops.MaxTimeoutSeconds + 1) }, "template.timeoutSeconds"},
		}
		for _, tc := range tests {
			in := good
			tc.edit(&in)
			_, err := svc.CreateSchedule(ctx, tenant, "alice", in)
			var de *commonops.Error
			if commonops.ErrorCode(err) != commonops.EINVALID || !errors.As(err, &de) || len(de.Fields) != 1 || de.Fields[0].Field != tc.field {
				t.Fatalf("%s: got %v, want EINVALID on %s", tc.name, err, tc.field)
			}
		}
		list, err := svc.ListSchedules(ctx, tenant, "", 10)
		if err != nil || len(list) != 0 {
			t.Fatalf("schedules after refused creates: got %d, %v, want none", len(list), err)
		}
	})
}

func TestScheduleTicks(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		var clk atomic.Int64
		clk.Store(t0.Add(30 * time.Second).UnixNano())
		svc = onClock(svc, &clk)
		v, err := svc.CreateSchedule(ctx, tenant, "alice", every5("", ""))
		if err != nil {
			t.Fatalf("CreateSchedule: %v", err)
		}
		if len(v.NextRuns) != 5 || !v.NextRuns[0].Equal(t0.Add(5*time.Minute)) || !v.NextRuns[4].Equal(t0.Add(25*time.Minute)) {
			t.Fatalf("next runs: got %v, want five from %s every 5m", v.NextRuns, t0.Add(5*time.Minute))
		}
		if string(v.Template.Params) != `{"format":"csv"}` || v.Overlap != commonops.OverlapSkip || v.MissedRuns != commonops.MissedSkip {
			t.Fatalf("defaults: got params %s, overlap %s, missedRuns %s, want compact params and skip, skip", v.Template.Params, v.Overlap, v.MissedRuns)
		}
		if got := fireAt(t, svc, &clk, t0.Add(4*time.Minute)); len(got) != 0 {
			t.Fatalf("FireDue before the tick: got %+v, want nothing", got)
		}
		got := fireAt(t, svc, &clk, t0.Add(5*time.Minute+2*time.Second))
		if len(got) != 1 || got[0].Task == nil || got[0].Task.RequestedBy != "alice" || got[0].Task.TaskType != "export" {
			t.Fatalf("FireDue at the tick: got %+v, want one export task requested by alice", got)
		}
		first := got[0].Task
		if again := fireAt(t, svc, &clk, t0.Add(5*time.Minute+3*time.Second)); len(again) != 0 {
			t.Fatalf("FireDue again within the tick: got %+v, want nothing", again)
		}
		// overlap=skip: the first task is still pending at the next tick.
		got = fireAt(t, svc, &clk, t0.Add(10*time.Minute))
		if len(got) != 1 || got[0].Task != nil || got[0].Skipped != "overlap" {
			t.Fatalf("tick while the last task runs: got %+v, want skipped for overlap", got)
		}
		if _, err := svc.Cancel(ctx, tenant, first.ID); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		got = fireAt(t, svc, &clk, t0.Add(15*time.Minute))
		if len(got) != 1 || got[0].Task == nil {
			t.Fatalf("tick after the last task ended: got %+v, want a task", got)
		}
		// Downtime: the ticks of 20m to 55m were missed; skip creates nothing
		// and moves to the first tick after now.
		if _, err := svc.Cancel(ctx, tenant, got[0].Task.ID); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		got = fireAt(t, svc, &clk, t0.Add(57*time.Minute))
		if len(got) != 1 || got[0].Task != nil || got[0].Skipped != "missed" {
			t.Fatalf("tick after downtime with missedRuns=skip: got %+v, want skipped as missed", got)
		}
		sc, err := svc.GetSchedule(ctx, tenant, v.ID)
		if err != nil || !sc.NextRunAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("next run after downtime: got %+v, %v, want %s", sc, err, t0.Add(time.Hour))
		}
		_, total, err := svc.List(ctx, commonops.ListFilter{TenantID: tenant})
		if err != nil || total != 2 {
			t.Fatalf("tasks: got %d, %v, want 2", total, err)
		}
	})
}

// TestScheduleTemplateTimeout checks that a template's timeoutSeconds is
// stored with the schedule and given to each task, and that a template
// without one takes the task type's default at the tick.
func TestScheduleTemplateTimeout(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		var clk atomic.Int64
		clk.Store(t0.Add(30 * time.Second).UnixNano())
		svc = onClock(svc, &clk)
		svc.TaskTimeouts = map[string]time.Duration{"export": time.Hour}
		own := every5("", commonops.MissedSkip)
		own.Overlap = commonops.OverlapAllow
		own.Template.TimeoutSeconds = ptr(90)
		v, err := svc.CreateSchedule(ctx, tenant, "alice", own)
		if err != nil {
			t.Fatalf("CreateSchedule with timeoutSeconds 90: %v", err)
		}
		sc, err := svc.GetSchedule(ctx, tenant, v.ID)
		if err != nil || sc.Template.TimeoutSeconds == nil || *sc.Template.TimeoutSeconds != 90 {
			t.Fatalf("stored template: got %+v, %v, want timeoutSeconds 90", sc, err)
		}
		byType := every5(commonops.OverlapAllow, "")
		if _, err := svc.CreateSchedule(ctx, tenant, "alice", byType); err != nil {
			t.Fatalf("CreateSchedule without timeoutSeconds: %v", err)
		}
		got := map[int]int{}
		for _, f := range fireAt(t, svc, &clk, t0.Add(5*time.Minute+time.Second)) {
			if f.Task == nil || f.Task.TimeoutSeconds == nil {
				t.Fatalf("fired: got %+v, want a task with timeoutSeconds", f)
			}
			got[*f.Task.TimeoutSeconds]++
		}
		if len(got) != 2 || got[90] != 1 || got[3600] != 1 {
			t.Fatalf("tasks' timeoutSeconds: got %v, want one of 90 (the template's) and one of 3600 (the type's)", got)
		}
	})
}

func TestScheduleMissedRunOnce(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		var clk atomic.Int64
		clk.Store(t0.UnixNano())
		svc = onClock(svc, &clk)
		v, err := svc.CreateSchedule(ctx, tenant, "alice", every5(commonops.OverlapAllow, commonops.MissedRunOnce))
		if err != nil {
			t.Fatalf("CreateSchedule: %v", err)
		}
		got := fireAt(t, svc, &clk, t0.Add(3*time.Hour+time.Second))
		if len(got) != 1 || got[0].Task == nil {
			t.Fatalf("tick after 3h of downtime with runOnce: got %+v, want one task", got)
		}
		sc, _ := svc.GetSchedule(ctx, tenant, v.ID)
		if !sc.NextRunAt.Equal(t0.Add(3*time.Hour + 5*time.Minute)) {
			t.Fatalf("next run: got %s, want %s", sc.NextRunAt, t0.Add(3*time.Hour+5*time.Minute))
		}
		// overlap=allow: the next tick creates a task beside the pending one.
		if got := fireAt(t, svc, &clk, t0.Add(3*time.Hour+5*time.Minute)); len(got) != 1 || got[0].Task == nil {
			t.Fatalf("tick with overlap=allow: got %+v, want a task", got)
		}
	})
}

func TestSchedulePauseResume(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		var clk atomic.Int64
		clk.Store(t0.UnixNano())
		svc = onClock(svc, &clk)
		v, err := svc.CreateSchedule(ctx, tenant, "alice", every5("", ""))
		if err != nil {
			t.Fatalf("CreateSchedule: %v", err)
		}
		p, err := svc.PauseSchedule(ctx, tenant, v.ID)
		if err != nil || !p.Paused || p.NextRunAt != nil || len(p.NextRuns) != 0 {
			t.Fatalf("PauseSchedule: got %+v, %v, want paused without next runs", p, err)
		}
		if got := fireAt(t, svc, &clk, t0.Add(20*time.Minute)); len(got) != 0 {
			t.Fatalf("FireDue while paused: got %+v, want nothing", got)
		}
		r, err := svc.ResumeSchedule(ctx, tenant, v.ID)
		if err != nil || r.Paused || !r.NextRunAt.Equal(t0.Add(25*time.Minute)) {
			t.Fatalf("ResumeSchedule at 20m: got %+v, %v, want next run at 25m", r, err)
		}
		up := every5("", "")
		up.Cron = "0 * * * *"
		u, err := svc.UpdateSchedule(ctx, tenant, v.ID, up)
		if err != nil || u.Cron != "0 * * * *" || !u.NextRunAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("UpdateSchedule to hourly at 20m: got %+v, %v, want next run at 1h", u, err)
		}
		if err := svc.DeleteSchedule(ctx, tenant, v.ID); err != nil {
			t.Fatalf("DeleteSchedule: %v", err)
		}
		if _, err := svc.GetSchedule(ctx, tenant, v.ID); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("GetSchedule after delete: got %v, want ENOTFOUND", err)
		}
	})
}

// TestSchedulersRace runs four schedulers (as four replicas) over one
// store, firing at the same instants: each tick creates exactly one task.
func TestSchedulersRace(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		var clk atomic.Int64
		clk.Store(t0.UnixNano())
		svc = onClock(svc, &clk)
		in := every5(commonops.OverlapAllow, commonops.MissedRunOnce)
		if _, err := svc.CreateSchedule(ctx, tenant, "alice", in); err != nil {
			t.Fatalf("CreateSchedule: %v", err)
		}
		const replicas, ticks = 4, 6
		var created atomic.Int64
		for i := 1; i <= ticks; i++ {
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			clk.Store(at.UnixNano())
			var wg sync.WaitGroup
			for range replicas {
				wg.Go(func() {
					fired, err := svc.FireDue(ctx, at, 10)
					if err != nil {
						t.Errorf("FireDue: %v", err)
					}
					for _, f := range fired {
						if f.Task != nil {
							created.Add(1)
						}
					}
				})
			}
			wg.Wait()
		}
		_, total, err := svc.List(ctx, commonops.ListFilter{TenantID: tenant})
		if err != nil || total != ticks || created.Load() != ticks {
			t.Fatalf("%d schedulers over %d ticks: got %d tasks stored, %d reported, %v, want %d", replicas, ticks, total, created.Load(), err, ticks)
		}
	})
}
