package commonops

import "time"

// ConfirmInput is ConfirmUpload of the input object whose ETag is etag: the
// task keeps the ETag of the file it confirmed, so that a later overwrite
// through the still valid upload URL is never taken for it. Confirming an
// upload already confirmed changes nothing, the ETag included.
func (t *Task) ConfirmInput(etag string, now time.Time) (Change, error) {
	ch, err := t.ConfirmUpload(now)
	if err == nil && !ch.None() {
		t.InputETag = &etag
	}
	return ch, err
}

// ConfirmOutput records the object a completed task's output file is:
// its key and its ETag when the task completed. A task that is not
// completed, or has no output file, keeps none.
func (t *Task) ConfirmOutput(key, etag string) {
	if t.Status != StatusCompleted || t.OutputFileName == nil {
		return
	}
	t.OutputObject, t.OutputETag = &key, &etag
}
