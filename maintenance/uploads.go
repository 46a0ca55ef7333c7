package maintenance

import (
	"context"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// waitingStatuses are the statuses of a task that may still await its upload.
var waitingStatuses = []commonops.Status{commonops.StatusScheduled, commonops.StatusPending}

// confirmUploads confirms tasks whose input object arrived without the
// client calling upload-complete.
func (r *Runner) confirmUploads(ctx context.Context, now time.Time) (int, error) {
	f := operations.SweepFilter{Statuses: waitingStatuses, UploadStatus: commonops.UploadAwaiting}
	return r.each(ctx, JobConfirmUpload, f, func(ctx context.Context, ref operations.TaskRef) error {
		_, err := r.svc.ConfirmUpload(ctx, ref.TenantID, ref.ID)
		return err
	})
}

// expireUploads fails tasks whose upload URL expired more than the
// Service's upload grace ago without the object arriving (a last look
// confirms late arrivals, which are not counted).
func (r *Runner) expireUploads(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-r.svc.Defaults().UploadGrace)
	f := operations.SweepFilter{Statuses: waitingStatuses, UploadStatus: commonops.UploadAwaiting, UploadExpiredBefore: &cutoff}
	return r.each(ctx, JobExpireUpload, f, func(ctx context.Context, ref operations.TaskRef) error {
		_, err := r.svc.ExpireUpload(ctx, ref, now)
		return err
	})
}
