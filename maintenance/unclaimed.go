package maintenance

import (
	"context"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// runnableUploads are the upload statuses of a task a worker may claim.
var runnableUploads = []commonops.UploadStatus{commonops.UploadNone, commonops.UploadUploaded}

// failUnclaimed fails runnable pending tasks that no worker took within
// UnclaimedTimeout of their last change (or of the end of their backoff).
// Tasks waiting for their upload or backing off are left out by the sweep
// itself; Service.FailUnclaimed checks again for the ones that changed
// since.
func (r *Runner) failUnclaimed(ctx context.Context, now time.Time) (int, error) {
	wait := r.cfg.UnclaimedTimeout
	cutoff := now.Add(-wait)
	f := operations.SweepFilter{
		Statuses:        []commonops.Status{commonops.StatusPending},
		UploadStatuses:  runnableUploads,
		UpdatedBefore:   &cutoff,
		AvailableBefore: &cutoff,
	}
	return r.each(ctx, JobUnclaimed, f, func(ctx context.Context, ref operations.TaskRef) error {
		_, err := r.svc.FailUnclaimed(ctx, ref, wait, now)
		return err
	})
}
