// Package commonops holds the domain of the commonops task service: the Task,
// its statuses and the rules for moving between them, and the domain error
// type. It imports nothing of ours and nothing outside the standard library;
// storage, HTTP, pub/sub and object storage adapt technologies to it.
package commonops

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is where a task is in its life. See the state machine in Transition
// functions (transition.go) and docs/design.md §2.
type Status string

// The task statuses. Completed, failed and cancelled are terminal.
const (
	StatusScheduled  Status = "scheduled"
	StatusPending    Status = "pending"
	StatusProcessing Status = "processing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
)

// Statuses lists every status, in life order.
var Statuses = []Status{StatusScheduled, StatusPending, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled}

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusScheduled, StatusPending, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Terminal reports whether no automatic transition leaves s.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// UploadStatus tracks the task's input file.
type UploadStatus string

// Upload statuses: none (no input file), awaiting (URL handed out, object not
// seen yet), uploaded (object verified), expired (never arrived in time).
const (
	UploadNone     UploadStatus = "none"
	UploadAwaiting UploadStatus = "awaiting"
	UploadUploaded UploadStatus = "uploaded"
	UploadExpired  UploadStatus = "expired"
)

// DefaultTenant is the tenant of requests that name none.
const DefaultTenant = "default"

// Task is one long-running operation. Its JSON form is the contract of
// docs/design.md §2: every field is present, null where unset.
type Task struct {
	ID              string          `json:"id"`
	TenantID        string          `json:"tenantId"`
	TaskType        string          `json:"taskType"`
	EntityType      string          `json:"entityType"`
	Status          Status          `json:"status"`
	Priority        int             `json:"priority"`
	Params          json.RawMessage `json:"params"`
	RequestedBy     string          `json:"requestedBy"`
	FileName        *string         `json:"fileName"`
	FileSize        *int64          `json:"fileSize"`
	ContentType     *string         `json:"contentType"`
	UploadStatus    UploadStatus    `json:"uploadStatus"`
	UploadExpiresAt *time.Time      `json:"uploadExpiresAt"`
	OutputFileName  *string         `json:"outputFileName"`
	ErrorsFileName  *string         `json:"errorsFileName"`
	Progress        float64         `json:"progress"`
	TotalItems      *int64          `json:"totalItems"`
	// TotalItemsEstimated is true while TotalItems is an estimate (an
	// import counts rows as it reads); it is exact once this is false.
	TotalItemsEstimated bool  `json:"totalItemsEstimated"`
	ProcessedItems      int64 `json:"processedItems"`
	SuccessItems        int64 `json:"successItems"`
	FailedItems         int64 `json:"failedItems"`
	// EtaSeconds is the worker's estimate of the seconds left in the
	// running attempt; null when unknown and once the attempt has ended.
	EtaSeconds      *int64  `json:"etaSeconds"`
	Message         *string `json:"message"`
	ErrorMessage    *string `json:"errorMessage"`
	Attempt         int     `json:"attempt"`
	RetryCount      int     `json:"retryCount"`
	MaxRetries      int     `json:"maxRetries"`
	CancelRequested bool    `json:"cancelRequested"`
	// Checkpoint is the processor's opaque resume point, kept across attempts.
	Checkpoint json.RawMessage `json:"checkpoint"`
	// LeaseOwner and LeaseExpiresAt are set while a worker holds the task.
	LeaseOwner     *string    `json:"leaseOwner"`
	LeaseExpiresAt *time.Time `json:"leaseExpiresAt"`
	// AvailableAt is the earliest time a pending task may be claimed (retry
	// backoff); null means at once.
	AvailableAt *time.Time `json:"availableAt"`
	ScheduledAt *time.Time `json:"scheduledAt"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	Version     int64      `json:"version"`
	// LastProgressEventAt throttles progress events to one a second.
	LastProgressEventAt *time.Time `json:"-"`
	// InputETag is the ETag of the input file when its upload was
	// confirmed, and OutputObject and OutputETag the key and ETag of the
	// output file when the task completed (docs/design.md §4). A download
	// of a file whose ETag has changed since is refused: an upload URL that
	// cannot be revoked (S3) may have overwritten it. Internal: not in the
	// task's JSON.
	InputETag    *string `json:"-"`
	OutputObject *string `json:"-"`
	OutputETag   *string `json:"-"`
	// StoredBytes is what the task's files hold in the object store, as
	// far as the task knows: its input once the upload was confirmed, its
	// output and errors files once it completed. A tenant's usage against
	// the stored-bytes quota is the sum over its tasks. Internal: not in
	// the task's JSON.
	StoredBytes int64 `json:"-"`
	// CallbackURL is told of the task's terminal status (a Delivery); null
	// for none.
	CallbackURL *string `json:"callbackUrl"`
	// TimeoutSeconds bounds each attempt: past StartedAt plus this, the
	// attempt fails with a timeout error (and is retried per MaxRetries),
	// and its worker's writes are refused. Null: no limit.
	TimeoutSeconds *int `json:"timeoutSeconds"`
	// AwaitingWorker is set, on read, on a pending task that could run but
	// no worker has claimed for a while (see Task.Awaiting): its task type
	// may have no processor anywhere. Null otherwise. Not stored (the tag
	// store:"-" keeps it out of the stores' round-trip tests).
	AwaitingWorker *AwaitingWorker `json:"awaitingWorker" store:"-"`
}

// Deadline is when the running attempt times out; nil when t is not
// processing or has no timeout.
func (t *Task) Deadline() *time.Time {
	if t.Status != StatusProcessing || t.TimeoutSeconds == nil || t.StartedAt == nil {
		return nil
	}
	d := t.StartedAt.Add(time.Duration(*t.TimeoutSeconds) * time.Second)
	return &d
}

// TimeoutPrefix starts the error message of an attempt that timed out.
const TimeoutPrefix = "timeout:"

// CheckDeadline reports, as a conflict error whose message starts with
// TimeoutPrefix, whether t's running attempt is past its deadline at now:
// its worker's writes are refused from then on.
func (t *Task) CheckDeadline(now time.Time) error {
	if d := t.Deadline(); d != nil && !now.Before(*d) {
		return conflict(t, "%s attempt %d of task %s ran past its timeoutSeconds (%d)", TimeoutPrefix, t.Attempt, t.ID, *t.TimeoutSeconds)
	}
	return nil
}

// TimeOut ends the running attempt past its deadline at now with a timeout
// error, retried after retryDelay while retries remain. A conflict when t
// is not past its deadline.
func (t *Task) TimeOut(retryDelay time.Duration, now time.Time) (Change, error) {
	d := t.Deadline()
	if d == nil || now.Before(*d) {
		return Change{}, conflict(t, "task %s has no attempt past its deadline", t.ID)
	}
	msg := fmt.Sprintf("%s attempt %d ran past its timeoutSeconds (%d)", TimeoutPrefix, t.Attempt, *t.TimeoutSeconds)
	return t.FailAttempt(msg, false, retryDelay, now), nil
}

// AwaitingWorker says since when a runnable task has waited for a worker.
type AwaitingWorker struct {
	// Since is when the task last became claimable: its last change, or
	// the end of its retry backoff.
	Since time.Time `json:"since"`
	// WaitedSeconds is how long it has waited, in whole seconds.
	WaitedSeconds int64 `json:"waitedSeconds"`
}

// Awaiting returns how long t has waited for a worker, when it is runnable
// at now and has waited at least after; nil otherwise. A worker that
// serves the task type claims a runnable task within a poll interval, so a
// longer wait says that none may serve it (maintenance fails it once the
// unclaimed timeout passes).
func (t *Task) Awaiting(after time.Duration, now time.Time) *AwaitingWorker {
	if !t.Runnable(now) {
		return nil
	}
	since := t.UpdatedAt
	if t.AvailableAt != nil && t.AvailableAt.After(since) {
		since = *t.AvailableAt
	}
	waited := now.Sub(since)
	if waited < after {
		return nil
	}
	return &AwaitingWorker{Since: since, WaitedSeconds: int64(waited / time.Second)}
}

// Runnable reports whether a worker may claim t at now.
func (t *Task) Runnable(now time.Time) bool {
	if t.Status != StatusPending || t.CancelRequested {
		return false
	}
	if t.UploadStatus == UploadAwaiting || t.UploadStatus == UploadExpired {
		return false
	}
	return t.AvailableAt == nil || !t.AvailableAt.After(now)
}

// Clone returns a deep copy of t, so a transition can be tried without
// touching the caller's value.
func (t *Task) Clone() *Task {
	c := *t
	c.Params = cloneRaw(t.Params)
	c.Checkpoint = cloneRaw(t.Checkpoint)
	return &c
}

func cloneRaw(r json.RawMessage) json.RawMessage {
	if r == nil {
		return nil
	}
	return append(json.RawMessage(nil), r...)
}

// LogLevel is the severity of a task log line.
type LogLevel string

// Log levels accepted from workers.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// Valid reports whether l is a defined level.
func (l LogLevel) Valid() bool {
	return l == LogDebug || l == LogInfo || l == LogWarn || l == LogError
}

// LogEntry is one line of a task's log.
type LogEntry struct {
	ID        int64           `json:"id"`
	TenantID  string          `json:"-"`
	TaskID    string          `json:"-"`
	Attempt   int             `json:"attempt"`
	Level     LogLevel        `json:"level"`
	Message   string          `json:"message"`
	Details   json.RawMessage `json:"details"`
	CreatedAt time.Time       `json:"createdAt"`
}

// Event is one row of a task's history (task_events). It carries the
// task's kind, its status after the change and its requester as they were
// when the change committed, so that a tenant's events can be filtered (and
// scoped to a submitter) without reading the task, which may be gone.
type Event struct {
	ID         int64  `json:"id"`
	TenantID   string `json:"-"`
	TaskID     string `json:"taskId"`
	TaskType   string `json:"taskType"`
	EntityType string `json:"entityType"`
	Status     Status `json:"status"`
	// RequestedBy scopes a submitter's stream; it is not sent, as the
	// task's own requestedBy is one GET away for those who may see it.
	RequestedBy string          `json:"-"`
	EventType   string          `json:"eventType"`
	EventData   json.RawMessage `json:"eventData"`
	CreatedAt   time.Time       `json:"createdAt"`
}
