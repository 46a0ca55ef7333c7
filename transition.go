package commonops

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Pub/sub topics (docs/design.md §5). The CloudEvent type is the topic.
const (
	TopicCreated   = "operations.task.created"   // the task became runnable
	TopicProgress  = "operations.task.progress"  // at most one a second per task
	TopicRetried   = "operations.task.retried"   // back to pending, by hand or after a failed attempt
	TopicCancelled = "operations.task.cancelled" // cancelled by a user
	TopicCompleted = "operations.task.completed" // done
	TopicFailed    = "operations.task.failed"    // failed for good
)

// Topics are every topic, in the order of the design's table.
var Topics = []string{TopicCreated, TopicProgress, TopicRetried, TopicCancelled, TopicCompleted, TopicFailed}

// WorkerTopics are the events a worker acts on: a task became runnable
// (created, retried) or must stop (cancelled). The built-in worker
// subscribes to them on the embedded bus and through Dapr.
var WorkerTopics = []string{TopicCreated, TopicRetried, TopicCancelled}

// Event types, as stored in task_events.eventType.
const (
	EventCreated         = "created"
	EventUploadConfirmed = "upload_confirmed"
	EventPromoted        = "promoted"
	EventStarted         = "started"
	EventProgress        = "progress"
	EventCompleted       = "completed"
	EventRetryScheduled  = "retry_scheduled"
	EventRetried         = "retried"
	EventCancelled       = "cancelled"
	EventFailed          = "failed"
	EventLeaseExpired    = "lease_expired"
	EventReleased        = "released"
	EventUploadExpired   = "upload_expired"
)

// ProgressEventInterval is the least time between two progress events of a task.
const ProgressEventInterval = time.Second

// Change is what a transition produced besides the new task state. The store
// writes the task row, one task_events row (when Event is set) and one outbox
// row (when Topic is set) in one transaction.
type Change struct {
	Event string         // task_events.eventType; "" writes no event and no outbox row
	Topic string         // pub/sub topic of the outbox row; "" publishes nothing
	Data  map[string]any // task_events.eventData
}

// None reports whether the transition changed nothing worth an event.
func (c Change) None() bool { return c.Event == "" }

func change(event, topic string, from, to Status, extra ...any) Change {
	data := map[string]any{"from": from, "to": to}
	for i := 0; i+1 < len(extra); i += 2 {
		data[extra[i].(string)] = extra[i+1]
	}
	return Change{Event: event, Topic: topic, Data: data}
}

func conflict(t *Task, format string, args ...any) *Error {
	return &Error{Code: ECONFLICT, Message: fmt.Sprintf(format, args...), Task: t.Clone()}
}

func (t *Task) touch(now time.Time) {
	t.UpdatedAt = now
	t.Version++
}

func (t *Task) clearLease() {
	t.LeaseOwner = nil
	t.LeaseExpiresAt = nil
	t.EtaSeconds = nil // the estimate of an attempt that has ended
}

// Claim moves a runnable pending task to processing for workerID, with a new
// attempt number and a lease until now+lease. A task without a checkpoint
// starts over, so its progress and counts are reset; one with a checkpoint
// keeps them, as its processor resumes.
func (t *Task) Claim(workerID string, lease time.Duration, now time.Time) (Change, error) {
	if !t.Runnable(now) {
		return Change{}, conflict(t, "task %s is not claimable: %s", t.ID, t.notRunnableReason(now))
	}
	from := t.Status
	t.Status = StatusProcessing
	t.Attempt++
	t.LeaseOwner = &workerID
	exp := now.Add(lease)
	t.LeaseExpiresAt = &exp
	t.StartedAt = &now
	t.AvailableAt = nil
	t.EtaSeconds = nil
	if len(t.Checkpoint) == 0 {
		t.Progress = 0
		t.ProcessedItems, t.SuccessItems, t.FailedItems = 0, 0, 0
	}
	t.touch(now)
	// A claim is recorded in the task's history but not published: docs/design.md
	// §5 has no topic for it, and it is the hottest write of a busy queue.
	return change(EventStarted, "", from, t.Status, "attempt", t.Attempt, "workerId", workerID), nil
}

func (t *Task) notRunnableReason(now time.Time) string {
	switch {
	case t.Status != StatusPending:
		return "status is " + string(t.Status)
	case t.UploadStatus == UploadAwaiting:
		return "its input file has not been uploaded"
	case t.UploadStatus == UploadExpired:
		return "its input file never arrived"
	case t.AvailableAt != nil && t.AvailableAt.After(now):
		return "it backs off until " + t.AvailableAt.UTC().Format(time.RFC3339)
	}
	return "it was cancelled"
}

// checkWorker refuses a worker write to a task that is not processing or
// that belongs to another attempt (fencing of zombie workers).
func (t *Task) checkWorker(attempt *int) error {
	if t.Status != StatusProcessing {
		if t.Status == StatusCancelled {
			return conflict(t, "task %s was cancelled", t.ID)
		}
		return conflict(t, "task %s is %s; it takes no worker updates", t.ID, t.Status)
	}
	if attempt != nil && *attempt != t.Attempt {
		return conflict(t, "stale attempt %d: task %s is on attempt %d", *attempt, t.ID, t.Attempt)
	}
	return nil
}

// ErrKindMismatch is the cause of the conflict CheckKind reports: a claim
// named kinds the stored task is not of (a stale or forged event, a worker
// key scoped to other task types).
var ErrKindMismatch = errors.New("the task is not of the kind the claim named")

// CheckKind reports, as a conflict error wrapping ErrKindMismatch, whether
// t is of none of kinds; empty kinds take any task.
func (t *Task) CheckKind(kinds []Kind) error {
	if len(kinds) == 0 {
		return nil
	}
	for _, k := range kinds {
		if k.Matches(t.TaskType, t.EntityType) {
			return nil
		}
	}
	return &Error{Code: ECONFLICT, Task: t, Err: ErrKindMismatch,
		Message: fmt.Sprintf("task %s is a (%s, %s) task, not of the kind the claim named", t.ID, t.TaskType, t.EntityType)}
}

// CheckAttempt reports, as a conflict error, whether a worker write for
// attempt may no longer touch t. A nil attempt skips the fencing check.
func (t *Task) CheckAttempt(attempt *int) error { return t.checkWorker(attempt) }

// Heartbeat renews the lease of a processing task.
func (t *Task) Heartbeat(attempt *int, lease time.Duration, now time.Time) (Change, error) {
	if err := t.checkWorker(attempt); err != nil {
		return Change{}, err
	}
	t.renewLease(lease, now)
	t.touch(now)
	return Change{}, nil
}

// renewLease extends the lease by the length the worker last got (the
// leaseSeconds it claimed with), or by def when that is unknown: a worker
// that claimed a ten-minute lease keeps ten minutes between its reports.
// Every worker write renews the lease and sets UpdatedAt, so the last
// length is LeaseExpiresAt - UpdatedAt.
func (t *Task) renewLease(def time.Duration, now time.Time) {
	d := def
	if t.LeaseExpiresAt != nil && t.LeaseExpiresAt.After(t.UpdatedAt) {
		d = t.LeaseExpiresAt.Sub(t.UpdatedAt)
	}
	exp := now.Add(d)
	t.LeaseExpiresAt = &exp
}

// Progress is a worker's report: every field is optional.
type Progress struct {
	Attempt    *int     `json:"attempt"`
	Progress   *float64 `json:"progress"`
	TotalItems *int64   `json:"totalItems"`
	// TotalItemsEstimated says whether TotalItems is an estimate; a
	// report that sets TotalItems without it gives an exact total.
	TotalItemsEstimated *bool `json:"totalItemsEstimated"`
	// EtaSeconds is the seconds the worker expects the attempt still takes.
	EtaSeconds     *int64  `json:"etaSeconds"`
	ProcessedItems *int64  `json:"processedItems"`
	SuccessItems   *int64  `json:"successItems"`
	FailedItems    *int64  `json:"failedItems"`
	Message        *string `json:"message"`
	Status         *Status `json:"status"`
	ErrorMessage   *string `json:"errorMessage"`
	OutputFileName *string `json:"outputFileName"`
	// ErrorsFileName names the errors report the attempt wrote. Only the
	// in-process job sets it, when it closes the report (remote workers
	// have no errors file to name), so it is not part of the worker API.
	ErrorsFileName *string `json:"-"`
	// Permanent marks a failure as not worth retrying.
	Permanent  bool            `json:"permanent"`
	Checkpoint json.RawMessage `json:"checkpoint"`
}

// MaxMessageLen bounds message and errorMessage (bytes).
const MaxMessageLen = 4096

// MaxAttempt bounds an attempt number a worker sends: both stores keep
// attempts in 32-bit columns, so a larger one could only ever be stale.
const MaxAttempt = math.MaxInt32

// Validate checks p on its own, before it meets a task.
func (p *Progress) Validate() error {
	var fields []FieldError
	for _, c := range []struct {
		name string
		v    *int64
	}{{"totalItems", p.TotalItems}, {"etaSeconds", p.EtaSeconds}, {"processedItems", p.ProcessedItems}, {"successItems", p.SuccessItems}, {"failedItems", p.FailedItems}} {
		if c.v != nil && *c.v < 0 {
			fields = append(fields, FieldError{c.name, fmt.Sprintf("must be from 0 to %d", int64(math.MaxInt64))})
		}
	}
	if p.Progress != nil && (math.IsNaN(*p.Progress) || *p.Progress < 0 || *p.Progress > 100) {
		fields = append(fields, FieldError{"progress", "must be between 0 and 100"})
	}
	if p.Status != nil && *p.Status != StatusProcessing && *p.Status != StatusCompleted && *p.Status != StatusFailed {
		fields = append(fields, FieldError{"status", "must be processing, completed or failed"})
	}
	if p.Attempt != nil && (*p.Attempt < 1 || *p.Attempt > MaxAttempt) {
		fields = append(fields, FieldError{"attempt", fmt.Sprintf("must be from 1 to %d", MaxAttempt)})
	}
	for _, c := range []struct {
		name string
		v    *string
	}{{"message", p.Message}, {"errorMessage", p.ErrorMessage}} {
		switch {
		case c.v == nil:
		case len(*c.v) > MaxMessageLen:
			fields = append(fields, FieldError{c.name, fmt.Sprintf("must be at most %d bytes", MaxMessageLen)})
		case !ValidText(*c.v):
			fields = append(fields, FieldError{c.name, "must be UTF-8 text without NUL characters"})
		}
	}
	if p.OutputFileName != nil {
		if _, err := SanitizeFileName(*p.OutputFileName); err != nil {
			fields = append(fields, FieldError{"outputFileName", err.Error()})
		}
	}
	if len(p.Checkpoint) > MaxCheckpointBytes {
		fields = append(fields, FieldError{"checkpoint", fmt.Sprintf("must be at most %d bytes", MaxCheckpointBytes)})
	}
	if len(fields) > 0 {
		return Invalid(fields...)
	}
	return nil
}

// MaxCheckpointBytes bounds a checkpoint's JSON.
const MaxCheckpointBytes = 64 << 10

// ApplyProgress records a worker's report on a processing task and renews
// its lease. Counts never go backwards within an attempt; progress is
// computed from processed/total when not given. A status of completed or
// failed ends the attempt (failed goes through FailAttempt with retryDelay).
func (t *Task) ApplyProgress(p Progress, lease, retryDelay time.Duration, now time.Time) (Change, error) {
	if err := p.Validate(); err != nil {
		return Change{}, err
	}
	if err := t.checkWorker(p.Attempt); err != nil {
		return Change{}, err
	}
	var fields []FieldError
	for _, c := range []struct {
		name     string
		new      *int64
		old      int64
		assignTo *int64
	}{
		{"processedItems", p.ProcessedItems, t.ProcessedItems, &t.ProcessedItems},
		{"successItems", p.SuccessItems, t.SuccessItems, &t.SuccessItems},
		{"failedItems", p.FailedItems, t.FailedItems, &t.FailedItems},
	} {
		if c.new != nil && *c.new < c.old {
			fields = append(fields, FieldError{c.name, fmt.Sprintf("must not go backwards (is %d, got %d)", c.old, *c.new)})
		}
	}
	if len(fields) > 0 {
		return Change{}, Invalid(fields...)
	}
	if p.TotalItems != nil {
		t.TotalItems = p.TotalItems
		t.TotalItemsEstimated = false
	}
	if p.TotalItemsEstimated != nil {
		t.TotalItemsEstimated = *p.TotalItemsEstimated
	}
	if p.EtaSeconds != nil {
		t.EtaSeconds = p.EtaSeconds
	}
	if p.ProcessedItems != nil {
		t.ProcessedItems = *p.ProcessedItems
	}
	if p.SuccessItems != nil {
		t.SuccessItems = *p.SuccessItems
	}
	if p.FailedItems != nil {
		t.FailedItems = *p.FailedItems
	}
	switch {
	case p.Progress != nil:
		t.Progress = *p.Progress
	case t.TotalItems != nil && *t.TotalItems > 0 && (p.ProcessedItems != nil || p.TotalItems != nil):
		t.Progress = math.Min(100, math.Round(float64(t.ProcessedItems)*10000/float64(*t.TotalItems))/100)
	}
	if p.Message != nil {
		t.Message = p.Message
	}
	if p.OutputFileName != nil {
		name, _ := SanitizeFileName(*p.OutputFileName)
		t.OutputFileName = &name
	}
	if p.ErrorsFileName != nil {
		name, _ := SanitizeFileName(*p.ErrorsFileName)
		t.ErrorsFileName = &name
	}
	if len(p.Checkpoint) > 0 {
		t.Checkpoint = cloneRaw(p.Checkpoint)
	}
	t.renewLease(lease, now)

	if p.Status != nil && *p.Status == StatusCompleted {
		return t.complete(now), nil
	}
	if p.Status != nil && *p.Status == StatusFailed {
		msg := "the worker reported a failure"
		if p.ErrorMessage != nil && *p.ErrorMessage != "" {
			msg = *p.ErrorMessage
		}
		return t.FailAttempt(msg, p.Permanent, retryDelay, now), nil
	}
	if p.ErrorMessage != nil {
		t.ErrorMessage = p.ErrorMessage
	}
	t.touch(now)
	if t.LastProgressEventAt == nil || now.Sub(*t.LastProgressEventAt) >= ProgressEventInterval {
		t.LastProgressEventAt = &now
		return change(EventProgress, TopicProgress, t.Status, t.Status, "progress", t.Progress, "processedItems", t.ProcessedItems), nil
	}
	return Change{}, nil
}

func (t *Task) complete(now time.Time) Change {
	from := t.Status
	t.Status = StatusCompleted
	t.Progress = 100
	t.CompletedAt = &now
	t.ErrorMessage = nil
	t.clearLease()
	t.touch(now)
	return change(EventCompleted, TopicCompleted, from, t.Status, "attempt", t.Attempt)
}

// FailAttempt ends the current attempt with msg. While retries remain and
// the error is not permanent, the task goes back to pending, claimable after
// retryDelay; otherwise it fails for good.
func (t *Task) FailAttempt(msg string, permanent bool, retryDelay time.Duration, now time.Time) Change {
	return t.failAttempt(EventRetryScheduled, msg, permanent, retryDelay, now)
}

func (t *Task) failAttempt(event, msg string, permanent bool, retryDelay time.Duration, now time.Time) Change {
	from := t.Status
	t.ErrorMessage = &msg
	t.clearLease()
	if !permanent && t.RetryCount < t.MaxRetries {
		t.Status = StatusPending
		t.RetryCount++
		at := now.Add(retryDelay)
		t.AvailableAt = &at
		t.touch(now)
		return change(event, TopicRetried, from, t.Status, "error", msg, "attempt", t.Attempt, "retryCount", t.RetryCount, "availableAt", at)
	}
	t.Status = StatusFailed
	t.CompletedAt = &now
	t.touch(now)
	return change(EventFailed, TopicFailed, from, t.Status, "error", msg, "attempt", t.Attempt, "permanent", permanent)
}

// Release hands a processing task back to pending without counting a
// retry: its worker is shutting down and did not fail it. Another worker
// picks it up (resuming from its checkpoint, if any).
func (t *Task) Release(attempt *int, now time.Time) (Change, error) {
	if err := t.checkWorker(attempt); err != nil {
		return Change{}, err
	}
	from := t.Status
	t.Status = StatusPending
	t.AvailableAt = nil
	t.clearLease()
	t.touch(now)
	return change(EventReleased, TopicRetried, from, t.Status, "attempt", t.Attempt), nil
}

// ExpireLease rescues a processing task whose worker stopped renewing its
// lease: back to pending while retries remain, else failed.
func (t *Task) ExpireLease(retryDelay time.Duration, now time.Time) (Change, error) {
	if t.Status != StatusProcessing || t.LeaseExpiresAt == nil || t.LeaseExpiresAt.After(now) {
		return Change{}, conflict(t, "task %s holds no lapsed lease", t.ID)
	}
	owner := ""
	if t.LeaseOwner != nil {
		owner = *t.LeaseOwner
	}
	msg := fmt.Sprintf("lease of worker %q expired during attempt %d", owner, t.Attempt)
	return t.failAttempt(EventLeaseExpired, msg, false, retryDelay, now), nil
}

// Cancel stops a task that has not ended. A processing task is cancelled at
// once; its worker learns it from the cancelled event or its next write.
func (t *Task) Cancel(now time.Time) (Change, error) {
	if t.Status.Terminal() {
		return Change{}, conflict(t, "task %s is already %s", t.ID, t.Status)
	}
	from := t.Status
	t.Status = StatusCancelled
	t.CancelRequested = true
	t.CompletedAt = &now
	t.clearLease()
	t.touch(now)
	return change(EventCancelled, TopicCancelled, from, t.Status), nil
}

// Retry puts a failed or cancelled task back to pending. It respects
// MaxRetries unless force is set (an operator going past it).
func (t *Task) Retry(force bool, now time.Time) (Change, error) {
	if t.Status != StatusFailed && t.Status != StatusCancelled {
		return Change{}, conflict(t, "only failed or cancelled tasks can be retried; task %s is %s", t.ID, t.Status)
	}
	if t.UploadStatus == UploadExpired || t.UploadStatus == UploadAwaiting {
		return Change{}, conflict(t, "task %s has no input file to run on (upload %s)", t.ID, t.UploadStatus)
	}
	if t.RetryCount >= t.MaxRetries && !force {
		return Change{}, conflict(t, "task %s has used its %d retries; retry with ?force=true to go past maxRetries", t.ID, t.MaxRetries)
	}
	from := t.Status
	t.Status = StatusPending
	t.RetryCount++
	t.CancelRequested = false
	t.CompletedAt = nil
	t.ErrorMessage = nil
	t.AvailableAt = nil
	t.touch(now)
	return change(EventRetried, TopicRetried, from, t.Status, "retryCount", t.RetryCount, "force", force), nil
}

// ConfirmUpload marks the input file as received. A pending task becomes
// runnable, which publishes operations.task.created. Confirming twice is a
// no-op.
func (t *Task) ConfirmUpload(now time.Time) (Change, error) {
	switch t.UploadStatus {
	case UploadUploaded:
		return Change{}, nil
	case UploadNone:
		return Change{}, conflict(t, "task %s has no input file", t.ID)
	case UploadExpired:
		return Change{}, conflict(t, "the upload window of task %s has expired", t.ID)
	}
	if t.Status.Terminal() {
		return Change{}, conflict(t, "task %s is already %s", t.ID, t.Status)
	}
	t.UploadStatus = UploadUploaded
	t.touch(now)
	topic := ""
	if t.Status == StatusPending {
		topic = TopicCreated
	}
	return change(EventUploadConfirmed, topic, t.Status, t.Status), nil
}

// ExpireUpload fails a task whose input file did not arrive in time.
func (t *Task) ExpireUpload(now time.Time) (Change, error) {
	if t.UploadStatus != UploadAwaiting || t.Status.Terminal() {
		return Change{}, conflict(t, "task %s is not awaiting an upload", t.ID)
	}
	from := t.Status
	t.UploadStatus = UploadExpired
	t.Status = StatusFailed
	msg := "the input file was not uploaded before the upload URL expired"
	t.ErrorMessage = &msg
	t.CompletedAt = &now
	t.touch(now)
	return change(EventUploadExpired, TopicFailed, from, t.Status, "error", msg), nil
}

// Promote makes a scheduled task pending once its time has come.
func (t *Task) Promote(now time.Time) (Change, error) {
	if t.Status != StatusScheduled || (t.ScheduledAt != nil && t.ScheduledAt.After(now)) {
		return Change{}, conflict(t, "task %s is not due", t.ID)
	}
	t.Status = StatusPending
	t.touch(now)
	topic := ""
	if t.Runnable(now) {
		topic = TopicCreated
	}
	return change(EventPromoted, topic, StatusScheduled, t.Status), nil
}

// FailUnclaimed fails a pending task that no worker took within wait: its
// task type probably has no processor anywhere.
func (t *Task) FailUnclaimed(wait time.Duration, now time.Time) (Change, error) {
	if t.Status != StatusPending {
		return Change{}, conflict(t, "task %s is %s, not pending", t.ID, t.Status)
	}
	msg := fmt.Sprintf("no worker claimed this task within %s: is a processor registered for taskType %q, entityType %q?", wait, t.TaskType, t.EntityType)
	return t.failAttempt(EventFailed, msg, true, 0, now), nil
}

// Retry backoff defaults: the delay before retry n is BackoffBase*2^(n-1),
// capped at BackoffMax, with jitter.
const (
	BackoffBase = time.Second
	BackoffMax  = 5 * time.Minute
)

// Backoff returns the delay before retry n (1 for the first retry):
// base*2^(n-1) capped at max, scaled by a jitter factor in [0.5, 1) taken
// from rnd (a number in [0, 1), such as rand.Float64).
func Backoff(n int, base, max time.Duration, rnd float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := max
	if n <= 32 {
		if e := base * time.Duration(uint64(1)<<(n-1)); e > 0 && e < max {
			d = e
		}
	}
	return time.Duration(float64(d) * (0.5 + rnd/2))
}
