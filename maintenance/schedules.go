package maintenance

import (
	"context"
	"time"
)

// fireSchedules fires the ticks of the schedules due by now: each creates
// its task, or skips the tick as its overlap and missed-run policies say.
// It counts the tasks created.
func (r *Runner) fireSchedules(ctx context.Context, now time.Time) (int, error) {
	fired, err := r.svc.FireDue(ctx, now, r.cfg.BatchSize)
	n := 0
	for _, f := range fired {
		if f.Task != nil {
			n++
		} else if f.Skipped != "" {
			r.log.Info("schedule tick skipped", "schedule", f.ScheduleID, "why", f.Skipped)
		}
	}
	return n, err
}
