package commonops

import "time"

// ConfirmInput is ConfirmUpload of the input object whose ETag is etag and
// whose size is size bytes: the task keeps the ETag of the file it
// confirmed, so that a later overwrite through the still valid upload URL
// is never taken for it, and counts its size in StoredBytes. Confirming an
// upload already confirmed changes nothing, the ETag and size included.
func (t *Task) ConfirmInput(etag string, size int64, now time.Time) (Change, error) {
	ch, err := t.ConfirmUpload(now)
	if err == nil && !ch.None() {
		t.InputETag = &etag
		t.StoredBytes += max(size, 0)
	}
	return ch, err
}

// ConfirmOutput records the object a completed task's output file is:
// its key and its ETag when the task completed, and its size in
// StoredBytes. A task that is not completed, or has no output file, or has
// one recorded already, keeps none.
func (t *Task) ConfirmOutput(key, etag string, size int64) {
	if t.Status != StatusCompleted || t.OutputFileName == nil || t.OutputObject != nil {
		return
	}
	t.OutputObject, t.OutputETag = &key, &etag
	t.StoredBytes += max(size, 0)
}

// ConfirmErrors counts, in StoredBytes, the size of the errors file a task
// left when it completed. A task that is not completed counts none.
func (t *Task) ConfirmErrors(size int64) {
	if t.Status != StatusCompleted {
		return
	}
	t.StoredBytes += max(size, 0)
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
