package commonops

import (
	"encoding/json"
	"time"
)

// Overlap says what a schedule's tick does while the task of its previous
// tick has not ended.
type Overlap string

// The overlap policies: skip the tick, or create the task anyway.
const (
	OverlapSkip  Overlap = "skip"
	OverlapAllow Overlap = "allow"
)

// Valid reports whether o is a defined policy.
func (o Overlap) Valid() bool { return o == OverlapSkip || o == OverlapAllow }

// MissedRuns says what a schedule does with ticks that passed while no
// replica could fire them (downtime, a paused leader).
type MissedRuns string

// The missed-run policies: skip every missed tick, or run one task for all
// of them.
const (
	MissedSkip    MissedRuns = "skip"
	MissedRunOnce MissedRuns = "runOnce"
)

// Valid reports whether m is a defined policy.
func (m MissedRuns) Valid() bool { return m == MissedSkip || m == MissedRunOnce }

// ScheduleTemplate is the task a schedule creates at each tick: the fields
// of CreateInput a recurring task may set.
type ScheduleTemplate struct {
	TaskType   string          `json:"taskType"`
	EntityType string          `json:"entityType"`
	Params     json.RawMessage `json:"params"`
	MaxRetries *int            `json:"maxRetries"`
	Priority   *int            `json:"priority"`
	// TimeoutSeconds bounds each attempt of the tasks it creates (see
	// Task.TimeoutSeconds); nil takes the task type's default at each tick.
	TimeoutSeconds *int `json:"timeoutSeconds,omitempty"`
}

// Input is the create input of the template's task.
func (t ScheduleTemplate) Input() CreateInput {
	return CreateInput{TaskType: t.TaskType, EntityType: t.EntityType, Params: t.Params, MaxRetries: t.MaxRetries, Priority: t.Priority, TimeoutSeconds: t.TimeoutSeconds}
}

// Schedule creates a task from Template at every tick of Cron, read in
// TimeZone (docs/design.md, Schedules). NextRunAt is the tick to fire next;
// the store fires it at most once across every replica (store.Store's
// FireSchedule).
type Schedule struct {
	ID         string           `json:"id"`
	TenantID   string           `json:"tenantId"`
	Cron       string           `json:"cron"`
	TimeZone   string           `json:"timeZone"`
	Template   ScheduleTemplate `json:"template"`
	Overlap    Overlap          `json:"overlap"`
	MissedRuns MissedRuns       `json:"missedRuns"`
	Paused     bool             `json:"paused"`
	// NextRunAt is the next tick, null while paused.
	NextRunAt *time.Time `json:"nextRunAt"`
	// LastRunAt is the last tick fired (with or without a task), and
	// LastTaskID the task the last tick that created one created.
	LastRunAt  *time.Time `json:"lastRunAt"`
	LastTaskID *string    `json:"lastTaskId"`
	CreatedBy  string     `json:"createdBy"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	Version    int64      `json:"version"`
}

// Clone returns a deep copy of s.
func (s *Schedule) Clone() *Schedule {
	c := *s
	c.Template.Params = cloneRaw(s.Template.Params)
	return &c
}
