package maintenance

import (
	"context"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// timeOut fails the attempts that ran past their task's timeoutSeconds by
// now; each is retried per maxRetries. The worker of such an attempt is
// refused from its deadline on (409), which cancels an in-process
// processor's context.
func (r *Runner) timeOut(ctx context.Context, now time.Time) (int, error) {
	f := operations.SweepFilter{Statuses: []commonops.Status{commonops.StatusProcessing}, DeadlineBefore: &now}
	return r.each(ctx, JobTimeout, f, func(ctx context.Context, ref operations.TaskRef) error {
		_, err := r.svc.TimeOut(ctx, ref, now)
		return err
	})
}
