package commonops

import (
	"errors"
	"fmt"
	"time"
)

// FlowControl holds back the claims of one task type: for every tenant
// (TenantID empty) or for one tenant. Claims, by any replica, never start a
// task of a paused type, and never let more than Limit tasks of the type
// (of the tenant, for a tenant's control) run at once. Creates are not held
// back: the tasks wait, pending, and the unclaimed timeout spares them.
type FlowControl struct {
	// TenantID is the tenant the control applies to; empty for all.
	TenantID string `json:"tenantId,omitempty"`
	TaskType string `json:"taskType"`
	// Limit bounds the running tasks; 0 for no bound.
	Limit int `json:"limit,omitempty"`
	// Paused stops every claim; running tasks finish.
	Paused    bool      `json:"paused"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// None reports whether fc holds nothing back (a store keeps no such row).
func (fc *FlowControl) None() bool { return fc.Limit <= 0 && !fc.Paused }

// ErrHeld is the cause of the conflict a claim of one task meets when its
// task type is paused or at its limit (a flow control holds it back).
var ErrHeld = errors.New("the task's type is held back by a flow control")

// Held returns the conflict error of a claim of t held back because its
// type is paused (paused true) or at its limit.
func Held(t *Task, paused bool) error {
	why := "is at its concurrency limit"
	if paused {
		why = "is paused"
	}
	return &Error{Code: ECONFLICT, Task: t, Err: ErrHeld,
		Message: fmt.Sprintf("task %s waits: task type %s %s", t.ID, t.TaskType, why)}
}

// Holds reports whether fc applies to a task of tenant and taskType.
func (fc *FlowControl) Holds(tenant, taskType string) bool {
	return fc.TaskType == taskType && (fc.TenantID == "" || fc.TenantID == tenant)
}

// FlowRoom is how many more tasks of tenant and taskType the controls let
// start, given running(tenant, taskType) (tenant "" counts every tenant),
// and whether one of them pauses the type; room is -1 when no limit
// applies.
func FlowRoom(controls []FlowControl, tenant, taskType string, running func(tenant, taskType string) int) (room int, paused bool) {
	room = -1
	for _, fc := range controls {
		if !fc.Holds(tenant, taskType) {
			continue
		}
		paused = paused || fc.Paused
		if fc.Limit > 0 {
			r := max(fc.Limit-running(fc.TenantID, taskType), 0)
			if room < 0 || r < room {
				room = r
			}
		}
	}
	return room, paused
}
