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

// AcceptsInput returns nil while the task waits for its input file name,
// and ECONFLICT once the upload was confirmed, expired or the task ended:
// from then on its upload URL must take no more files.
func (t *Task) AcceptsInput(name string) error {
	switch {
	case t.FileName == nil || *t.FileName != name:
		return conflict(t, "task %s takes no input file %q", t.ID, name)
	case t.UploadStatus == UploadUploaded:
		return conflict(t, "the input file of task %s was already uploaded and confirmed: its upload URL takes no more files", t.ID)
	case t.UploadStatus != UploadAwaiting:
		return conflict(t, "the upload window of task %s has closed (upload %s)", t.ID, t.UploadStatus)
	case t.Status.Terminal():
		return conflict(t, "task %s is already %s: its upload URL takes no more files", t.ID, t.Status)
	}
	return nil
}

// AcceptsOutput returns nil while attempt is the task's running attempt,
// and ECONFLICT otherwise: an output upload URL works only for the attempt
// it was issued to, and only until that attempt ends.
func (t *Task) AcceptsOutput(attempt int) error {
	switch {
	case t.Status != StatusProcessing:
		return conflict(t, "task %s is %s: the output upload URLs of its attempts take no more files", t.ID, t.Status)
	case attempt != t.Attempt:
		return conflict(t, "the upload URL is for attempt %d, but task %s is on attempt %d: it takes no more files", attempt, t.ID, t.Attempt)
	}
	return nil
}
