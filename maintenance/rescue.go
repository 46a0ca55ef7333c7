package maintenance

import (
	"context"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// rescue sends processing tasks whose lease lapsed (their worker crashed or
// hangs) back to pending, or to failed when their retries are spent.
func (r *Runner) rescue(ctx context.Context, now time.Time) (int, error) {
	f := operations.SweepFilter{Statuses: []commonops.Status{commonops.StatusProcessing}, LeaseExpiredBefore: &now}
	return r.each(ctx, JobRescue, f, func(ctx context.Context, ref operations.TaskRef) error {
		_, err := r.svc.RescueLease(ctx, ref, now)
		return err
	})
}
