package operations

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones on hosts without a zoneinfo database

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// Schedule bounds and defaults.
const (
	// MissedRunGraceDefault is how late a tick may fire and still count as
	// on time; a later one was missed (the service was down) and follows the
	// schedule's missedRuns policy.
	MissedRunGraceDefault = time.Minute
	// MaxCronLen bounds a cron expression.
	MaxCronLen = 200
	// NextRunsShown is how many coming ticks a schedule's view lists.
	NextRunsShown = 5
	// ScheduleListMax bounds a page of schedules.
	ScheduleListMax = 100
)

// ScheduleInput is the body of POST /schedules and PUT /schedules/{id}.
type ScheduleInput struct {
	// Cron is a standard five-field expression (minute hour day-of-month
	// month day-of-week) or one of @yearly, @monthly, @weekly, @daily,
	// @midnight, @hourly.
	Cron string `json:"cron"`
	// TimeZone is the IANA zone the expression is read in. Defaults to UTC.
	TimeZone string                     `json:"timeZone"`
	Template commonops.ScheduleTemplate `json:"template"`
	// Overlap defaults to skip; MissedRuns to skip.
	Overlap    commonops.Overlap    `json:"overlap"`
	MissedRuns commonops.MissedRuns `json:"missedRuns"`
}

// ScheduleView is a schedule with its coming ticks (none while paused).
type ScheduleView struct {
	*commonops.Schedule
	NextRuns []time.Time `json:"nextRuns"`
}

// cronParser reads the standard five fields and the descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// clock is a parsed schedule: its cron expression and time zone.
type clock struct {
	spec *cron.SpecSchedule
	loc  *time.Location
}

// parseClock validates a cron expression and a time zone, naming each
// problem as a field error of the input.
func parseClock(expr, zone string) (clock, []commonops.FieldError) {
	var fe fieldErrors
	var c clock
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		fe.add("cron", "is required")
	case len(e) > MaxCronLen:
		fe.add("cron", "must be at most %d characters", MaxCronLen)
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		fe.add("cron", "must not name a time zone: set timeZone instead")
	case strings.HasPrefix(e, "@every"):
		fe.add("cron", "@every is not supported: use five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly")
	default:
		s, err := cronParser.Parse(e)
		spec, ok := s.(*cron.SpecSchedule)
		switch {
		case err != nil:
			fe.add("cron", "is not a valid cron expression (minute hour day-of-month month day-of-week): %v", err)
		case !ok:
			fe.add("cron", "is not a calendar schedule")
		default:
			spec.Location = time.UTC // Next reads wall times; see next
			c.spec = spec
		}
	}
	switch {
	case zone == "Local":
		fe.add("timeZone", "must be an IANA time zone name such as Europe/Paris or UTC, not Local")
	case len(zone) > 64 || !commonops.Printable(zone):
		fe.add("timeZone", "must be an IANA time zone name such as Europe/Paris or UTC")
	default:
		loc, err := time.LoadLocation(zone)
		if err != nil {
			fe.add("timeZone", "%q is not an IANA time zone name such as Europe/Paris or UTC", zone)
		} else {
			c.loc = loc
		}
	}
	if c.spec != nil && c.loc != nil && c.next(time.Now()).IsZero() {
		fe.add("cron", "matches no date in the next five years")
	}
	return c, fe
}

// next returns the first tick strictly after after, or zero when there is
// none within five years. The expression is matched against wall-clock
// times in the zone, which daylight saving shifts (docs/design.md,
// Schedules):
//   - a tick whose wall time does not exist (the hour skipped in spring)
//     fires once, at the instant the clock jumps (02:30 on the night
//     America/New_York moves from 02:00 EST to 03:00 EDT fires at 03:00
//     EDT); several such ticks fire once together;
//   - a wall time that occurs twice (the hour repeated in autumn) fires
//     once, at its first occurrence.
func (c clock) next(after time.Time) time.Time {
	w := wall(after.In(c.loc))
	for range 1000 {
		w = c.spec.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		r := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, c.loc)
		if rw := wall(r); !rw.Equal(w) { // in a gap: fire when it ends
			start, end := r.ZoneBounds() // r is on one side of the jump
			if r = start; rw.Before(w) {
				r = end
			}
		} else if earlier := r.Add(-time.Hour); wall(earlier).Equal(w) {
			r = earlier // repeated: the first occurrence
		}
		if r.After(after) {
			return r.UTC()
		}
	}
	return time.Time{}
}

// wall is t's wall-clock reading as a UTC time.
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

// runs returns the n ticks after after.
func (c clock) runs(after time.Time, n int) []time.Time {
	out := []time.Time{}
	for range n {
		after = c.next(after)
		if after.IsZero() {
			break
		}
		out = append(out, after)
	}
	return out
}

// NextRuns returns the n ticks of cron in zone after after: what a
// schedule's view lists. EINVALID as at create.
func NextRuns(expr, zone string, after time.Time, n int) ([]time.Time, error) {
	c, fe := parseClock(expr, zone)
	if len(fe) > 0 {
		return nil, commonops.Invalid(fe...)
	}
	return c.runs(after, n), nil
}

// checkSchedule validates in, with its template held to the rules of a
// create (the same validation and task-type checks): a template that
// would be refused is EINVALID, its fields named template.*.
func (s *Service) checkSchedule(in *ScheduleInput, now time.Time) (clock, error) {
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if in.Overlap == "" {
		in.Overlap = commonops.OverlapSkip
	}
	if in.MissedRuns == "" {
		in.MissedRuns = commonops.MissedSkip
	}
	c, fields := parseClock(in.Cron, in.TimeZone)
	fe := fieldErrors(fields)
	if !in.Overlap.Valid() {
		fe.add("overlap", "must be skip or allow")
	}
	if !in.MissedRuns.Valid() {
		fe.add("missedRuns", "must be skip or runOnce")
	}
	t, _, err := commonops.NewTask("template", "template", "template", in.Template.Input(), s.Limits, now)
	if err == nil {
		err = s.checkCreate(in.Template.Input())
	}
	if err != nil {
		var de *commonops.Error
		switch {
		case errors.As(err, &de) && len(de.Fields) > 0:
			for _, f := range de.Fields {
				fe.add("template."+f.Field, "%s", f.Message)
			}
		case errors.As(err, &de):
			fe.add("template", "would be refused at create: %s", de.Message)
		default:
			return c, err
		}
	} else {
		in.Template.Params = t.Params // compacted, {} when absent
	}
	in.Cron = strings.TrimSpace(in.Cron)
	return c, fe.err()
}

// view is sc with its next ticks after now.
func (s *Service) view(sc *commonops.Schedule, now time.Time) *ScheduleView {
	v := &ScheduleView{Schedule: sc, NextRuns: []time.Time{}}
	if sc.Paused {
		return v
	}
	if c, fe := parseClock(sc.Cron, sc.TimeZone); len(fe) == 0 {
		v.NextRuns = c.runs(now, NextRunsShown)
	}
	return v
}

// CreateSchedule stores a new schedule of tenant made by requester (whose
// name its tasks carry as requestedBy). EINVALID for a bad cron expression
// or time zone, an unknown policy, or a template a create would refuse.
func (s *Service) CreateSchedule(ctx context.Context, tenant, requester string, in ScheduleInput) (*ScheduleView, error) {
	now := s.now()
	c, err := s.checkSchedule(&in, now)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("schedule id: %w", err)
	}
	if o := scopeOf(ctx).OwnedBy; o != "" {
		requester = o
	}
	next := c.next(now)
	sc := &commonops.Schedule{
		ID: id.String(), TenantID: tenant, Cron: in.Cron, TimeZone: in.TimeZone, Template: in.Template,
		Overlap: in.Overlap, MissedRuns: in.MissedRuns, NextRunAt: &next,
		CreatedBy: requester, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	if err := s.Store.CreateSchedule(ctx, sc); err != nil {
		return nil, fmt.Errorf("create schedule: %w", err)
	}
	return s.view(sc, now), nil
}

// GetSchedule returns tenant's schedule id with its next five ticks.
func (s *Service) GetSchedule(ctx context.Context, tenant, id string) (*ScheduleView, error) {
	sc, err := s.getSchedule(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return s.view(sc, s.now()), nil
}

// getSchedule reads a schedule the request's scope may reach: a
// submitter's own only.
func (s *Service) getSchedule(ctx context.Context, tenant, id string) (*commonops.Schedule, error) {
	sc, err := s.Store.GetSchedule(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if err := scheduleScope(ctx, sc); err != nil {
		return nil, err
	}
	return sc, nil
}

func scheduleScope(ctx context.Context, sc *commonops.Schedule) error {
	if o := scopeOf(ctx).OwnedBy; o != "" && sc.CreatedBy != o {
		return commonops.Errorf(commonops.ENOTFOUND, "schedule %s not found", sc.ID)
	}
	return nil
}

// ListSchedules returns up to limit (at most ScheduleListMax) of tenant's
// schedules after the id after, in id (creation) order; a submitter sees
// its own only.
func (s *Service) ListSchedules(ctx context.Context, tenant, after string, limit int) ([]*ScheduleView, error) {
	if limit <= 0 || limit > ScheduleListMax {
		return nil, commonops.Invalid(commonops.FieldError{Field: "limit", Message: fmt.Sprintf("must be from 1 to %d", ScheduleListMax)})
	}
	now := s.now()
	out := []*ScheduleView{}
	for len(out) < limit {
		page, err := s.Store.ListSchedules(ctx, tenant, after, limit)
		if err != nil {
			return nil, err
		}
		for _, sc := range page {
			if scheduleScope(ctx, sc) == nil && len(out) < limit {
				out = append(out, s.view(sc, now))
			}
		}
		if len(page) < limit {
			break
		}
		after = page[len(page)-1].ID
	}
	return out, nil
}

// UpdateSchedule replaces tenant's schedule id's expression, zone,
// template and policies (checked as at create); the next tick is counted
// again from now.
func (s *Service) UpdateSchedule(ctx context.Context, tenant, id string, in ScheduleInput) (*ScheduleView, error) {
	now := s.now()
	c, err := s.checkSchedule(&in, now)
	if err != nil {
		return nil, err
	}
	sc, err := s.Store.UpdateSchedule(ctx, tenant, id, func(sc *commonops.Schedule) error {
		if err := scheduleScope(ctx, sc); err != nil {
			return err
		}
		sc.Cron, sc.TimeZone, sc.Template, sc.Overlap, sc.MissedRuns = in.Cron, in.TimeZone, in.Template, in.Overlap, in.MissedRuns
		sc.UpdatedAt = now
		if !sc.Paused {
			next := c.next(now)
			sc.NextRunAt = &next
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.view(sc, now), nil
}

// PauseSchedule stops tenant's schedule id from firing; pausing a paused
// schedule changes nothing.
func (s *Service) PauseSchedule(ctx context.Context, tenant, id string) (*ScheduleView, error) {
	return s.setPaused(ctx, tenant, id, true)
}

// ResumeSchedule lets tenant's schedule id fire again from its next tick
// after now: the ticks that passed while it was paused are not run.
func (s *Service) ResumeSchedule(ctx context.Context, tenant, id string) (*ScheduleView, error) {
	return s.setPaused(ctx, tenant, id, false)
}

func (s *Service) setPaused(ctx context.Context, tenant, id string, paused bool) (*ScheduleView, error) {
	now := s.now()
	sc, err := s.Store.UpdateSchedule(ctx, tenant, id, func(sc *commonops.Schedule) error {
		if err := scheduleScope(ctx, sc); err != nil {
			return err
		}
		if sc.Paused == paused {
			return nil
		}
		sc.Paused, sc.UpdatedAt, sc.NextRunAt = paused, now, nil
		if !paused {
			c, fe := parseClock(sc.Cron, sc.TimeZone)
			if len(fe) > 0 {
				return commonops.Invalid(fe...)
			}
			next := c.next(now)
			sc.NextRunAt = &next
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.view(sc, now), nil
}

// DeleteSchedule deletes tenant's schedule id; the tasks it created stay.
func (s *Service) DeleteSchedule(ctx context.Context, tenant, id string) error {
	if _, err := s.getSchedule(ctx, tenant, id); err != nil {
		return err
	}
	return s.Store.DeleteSchedule(ctx, tenant, id)
}

// Fired is what one tick of a schedule did.
type Fired struct {
	ScheduleID string
	// Task is the task the tick created; nil when it created none.
	Task *commonops.Task
	// Skipped says why a tick created no task: "overlap" (the previous
	// task is still running), "missed" (the tick was missed and the policy
	// is skip), or "raced" (another replica fired it).
	Skipped string
}

// FireDue fires the ticks of every schedule due by now, at most limit, and
// returns what each did. Any number of replicas may call it at once: each
// tick fires once (store.Store's FireSchedule).
func (s *Service) FireDue(ctx context.Context, now time.Time, limit int) ([]Fired, error) {
	due, err := s.Store.DueSchedules(ctx, now, limit)
	if err != nil {
		return nil, fmt.Errorf("due schedules: %w", err)
	}
	var out []Fired
	var errs []error
	for _, sc := range due {
		f, err := s.fire(ctx, sc, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("fire schedule %s: %w", sc.ID, err))
			continue
		}
		out = append(out, f)
	}
	return out, errors.Join(errs...)
}

// fire fires sc's due tick at now. The next tick is the first after now,
// so ticks missed while nothing fired are not fired one by one: a tick
// later than the grace runs once (missedRuns=runOnce) or not at all
// (skip).
func (s *Service) fire(ctx context.Context, sc *commonops.Schedule, now time.Time) (Fired, error) {
	c, fe := parseClock(sc.Cron, sc.TimeZone)
	if len(fe) > 0 {
		return Fired{}, commonops.Invalid(fe...)
	}
	next := c.next(now)
	if next.IsZero() {
		return Fired{}, fmt.Errorf("cron %q has no tick after %s", sc.Cron, now)
	}
	grace := s.MissedRunGrace
	if grace <= 0 {
		grace = MissedRunGraceDefault
	}
	f := store.ScheduleFire{TenantID: sc.TenantID, ID: sc.ID, Tick: *sc.NextRunAt, Next: next, Now: now}
	var skipped string
	if now.Sub(*sc.NextRunAt) > grace && sc.MissedRuns == commonops.MissedSkip {
		skipped = "missed"
	}
	if skipped == "" && sc.Overlap == commonops.OverlapSkip && sc.LastTaskID != nil {
		prev, err := s.Store.GetTask(ctx, sc.TenantID, *sc.LastTaskID)
		switch {
		case err == nil && !prev.Status.Terminal():
			skipped = "overlap"
		case err != nil && commonops.ErrorCode(err) != commonops.ENOTFOUND:
			return Fired{}, err
		}
	}
	if skipped == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return Fired{}, fmt.Errorf("task id: %w", err)
		}
		t, ch, err := commonops.NewTask(id.String(), sc.TenantID, sc.CreatedBy, s.withTimeout(sc.Template.Input()), s.Limits, now)
		if err != nil {
			return Fired{}, fmt.Errorf("task of schedule %s: %w", sc.ID, err)
		}
		ch.Data["scheduleId"], ch.Data["tick"] = sc.ID, f.Tick
		f.Task, f.Change = t, ch
	}
	ok, err := s.Store.FireSchedule(ctx, f)
	if err != nil {
		return Fired{}, err
	}
	if !ok {
		return Fired{ScheduleID: sc.ID, Skipped: "raced"}, nil
	}
	if f.Task != nil {
		s.created(sc.TenantID)
	}
	return Fired{ScheduleID: sc.ID, Task: f.Task, Skipped: skipped}, nil
}
