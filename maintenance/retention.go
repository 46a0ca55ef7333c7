package maintenance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// retention deletes terminal tasks older than their status's retention,
// with their logs, events and files.
func (r *Runner) retention(ctx context.Context, now time.Time) (int, error) {
	total := 0
	var errs []error
	for _, rule := range []struct {
		status commonops.Status
		keep   time.Duration
	}{
		{commonops.StatusCompleted, r.cfg.RetentionCompleted},
		{commonops.StatusFailed, r.cfg.RetentionFailed},
		{commonops.StatusCancelled, r.cfg.RetentionCancelled},
	} {
		cutoff := now.Add(-rule.keep)
		n, err := r.each(ctx, JobRetention+"/"+string(rule.status), operations.SweepFilter{Statuses: []commonops.Status{rule.status}, CompletedBefore: &cutoff},
			func(ctx context.Context, ref operations.TaskRef) error {
				return r.svc.Delete(ctx, ref.TenantID, ref.ID)
			})
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rule.status, err))
		}
	}
	return total, errors.Join(errs...)
}
