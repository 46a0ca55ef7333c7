package maintenance

import (
	"context"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// promote makes scheduled tasks whose time has come pending.
func (r *Runner) promote(ctx context.Context, now time.Time) (int, error) {
	f := operations.SweepFilter{Statuses: []commonops.Status{commonops.StatusScheduled}, ScheduledBefore: &now}
	return r.each(ctx, JobPromote, f, func(ctx context.Context, ref operations.TaskRef) error {
		_, err := r.svc.Promote(ctx, ref, now)
		return err
	})
}
