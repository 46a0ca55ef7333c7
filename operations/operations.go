// Package operations is what commonops does, on top of the store and the
// object store: create, read, cancel, retry and delete tasks, confirm
// uploads, hand out file URLs, and the worker calls (claim, progress, logs,
// output). httpapi, the built-in worker and maintenance all call it, so every
// entry point applies the same rules; the rules themselves are the
// transitions of the root package.
package operations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/store"
)

// LeaseDefault is how long a claim or a progress call holds a task.
const LeaseDefault = 30 * time.Second

// LeaseMax bounds the lease a worker may ask for.
const LeaseMax = time.Hour

// AwaitingWorkerAfterDefault is how long a runnable task waits unclaimed
// before a read of it says awaitingWorker: several poll intervals of a
// worker that serves its task type.
const AwaitingWorkerAfterDefault = 10 * time.Second

// UploadGraceDefault is how long after its URL expires an upload may still
// be found before the task fails with uploadStatus=expired.
const UploadGraceDefault = time.Minute

// Service carries out the use cases. Zero fields take their defaults.
type Service struct {
	Store   store.Store
	Objects objectstore.Store
	Limits  commonops.Limits
	// Lease is the lease a claim grants when the worker asks for none, and
	// that progress calls renew. Defaults to LeaseDefault.
	Lease time.Duration
	// URLExpiry is the lifetime of upload and download URLs. Defaults to
	// objectstore.URLExpiryDefault.
	URLExpiry time.Duration
	// UploadGrace is added to the upload URL's expiry before the upload is
	// declared lost. Defaults to UploadGraceDefault.
	UploadGrace time.Duration
	// BackoffBase and BackoffMax shape the retry delays. Default to
	// commonops.BackoffBase and commonops.BackoffMax.
	BackoffBase, BackoffMax time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand returns jitter in [0, 1). Defaults to rand.Float64.
	Rand func() float64
	// Quotas bound what each tenant may create and hold (quota.go).
	// Defaults to none.
	Quotas Quotas
	// Validators check the creates of their task type (validators.go): a
	// task a processor could never run is refused with the problems the
	// check names, and nothing is stored. bulk.Validators provides those of
	// the built-in import and export. Defaults to none.
	Validators map[string]CreateCheck
	// Webhooks checks callback and subscription URLs (a webhook.Guard).
	// Defaults to none: the service sends no webhooks, and refuses a
	// callbackUrl or a subscription.
	Webhooks URLChecker
	// FairWeights are the tenants' weights in the claims' turns (see
	// store.Store.ClaimNext); a tenant not named weighs 1. Defaults to
	// none.
	FairWeights map[string]int
	// FairHalfLife is how fast a tenant's recent claims fade from its
	// share in the claims' turns (see fairUse). Defaults to
	// FairHalfLifeDefault; negative: a share counts running tasks only.
	FairHalfLife time.Duration
	// MissedRunGrace is how late a schedule's tick may fire and still be on
	// time; a later tick follows the schedule's missedRuns policy. Defaults
	// to MissedRunGraceDefault (1m).
	MissedRunGrace time.Duration
	// TaskTimeouts are the timeoutSeconds of the creates of each task type
	// that name none. Defaults to none (no limit).
	TaskTimeouts map[string]time.Duration
	// AwaitingWorkerAfter is how long a runnable task waits unclaimed before
	// Get and List set its AwaitingWorker. Defaults to
	// AwaitingWorkerAfterDefault.
	AwaitingWorkerAfter time.Duration

	quota *quotaCache // made on first use (cache); a Service may be copied before
	flow  *flowCache  // made on first use (flowCache)
	use   *fairUse    // made on first use (fairUse)
}

// now is the current time at the precision both stores keep (microseconds),
// so an answer built before a write (the response an Idempotency-Key
// replays) equals the task read back after it.
func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// Defaults are the settings a Service runs with: its fields where set, the
// package and domain defaults where zero. Callers that need a setting (the
// worker's heartbeat follows the lease, maintenance's upload sweep the
// grace) read it here, so each default lives in one place.
type Defaults struct {
	Lease       time.Duration
	URLExpiry   time.Duration
	UploadGrace time.Duration
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

// Defaults returns the settings s runs with.
func (s *Service) Defaults() Defaults {
	d := Defaults{
		Lease:       LeaseDefault,
		URLExpiry:   objectstore.URLExpiryDefault,
		UploadGrace: UploadGraceDefault,
		BackoffBase: commonops.BackoffBase,
		BackoffMax:  commonops.BackoffMax,
	}
	if s.Lease > 0 {
		d.Lease = s.Lease
	}
	if s.URLExpiry > 0 {
		d.URLExpiry = min(s.URLExpiry, objectstore.URLExpiryMax)
	}
	if s.UploadGrace > 0 {
		d.UploadGrace = s.UploadGrace
	}
	if s.BackoffBase > 0 {
		d.BackoffBase = s.BackoffBase
	}
	if s.BackoffMax > 0 {
		d.BackoffMax = s.BackoffMax
	}
	return d
}

// lease is the lease of a claim that asks for seconds (0: the default).
func (s *Service) lease(seconds int) time.Duration {
	if seconds > 0 {
		return min(time.Duration(seconds)*time.Second, LeaseMax)
	}
	return s.Defaults().Lease
}

// RetryDelay is the backoff before the retry that follows retryCount
// retries already made.
func (s *Service) RetryDelay(retryCount int) time.Duration {
	d := s.Defaults()
	r := rand.Float64
	if s.Rand != nil {
		r = s.Rand
	}
	return commonops.Backoff(retryCount+1, d.BackoffBase, d.BackoffMax, r())
}

// CreateRequest is a create call with who makes it.
type CreateRequest struct {
	TenantID  string
	Requester string
	Input     commonops.CreateInput
	// IdempotencyKey, when set, makes a repeated request return the first
	// response; RequestHash identifies the body it came with.
	IdempotencyKey string
	RequestHash    string
}

// Created is the answer to a create: the task and, with a fileName, where
// and how to upload the input.
type Created struct {
	Task            *commonops.Task   `json:"task"`
	UploadURL       *string           `json:"uploadUrl,omitempty"`
	UploadMethod    *string           `json:"uploadMethod,omitempty"`
	UploadHeaders   map[string]string `json:"uploadHeaders,omitempty"`
	UploadExpiresAt *time.Time        `json:"uploadExpiresAt,omitempty"`
	// QueuePaused tells that a flow control pauses the task's type: the
	// task waits, pending, until it is resumed.
	QueuePaused bool `json:"queuePaused,omitempty"`
}

// createdFields has Created's fields and tags but not its methods.
type createdFields Created

// AppendJSON appends c's JSON to b, as encoding/json would: the task by
// its AppendJSON (the answer to every create; see Task.AppendJSON), the
// few other fields by encoding/json.
func (c *Created) AppendJSON(b []byte) ([]byte, error) {
	const nullTask = `{"task":null`
	rest := *c
	rest.Task = nil
	tail, err := json.Marshal((*createdFields)(&rest))
	if err != nil {
		return nil, err
	}
	b = append(b, `{"task":`...)
	if c.Task == nil {
		b = append(b, "null"...)
	} else if b, err = c.Task.AppendJSON(b); err != nil {
		return nil, err
	}
	return append(b, tail[len(nullTask):]...), nil
}

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 255

// Create validates and stores a new task. With a file name it also returns
// a pre-signed upload URL. A repeated idempotency key with the same request
// hash returns the first answer and replayed=true; with another hash it is
// EINVALID. A create the check of its task type refuses (s.Validators) is
// EINVALID and stores nothing. A create a quota forbids (s.Quotas) is ETOOMANY or
// ESTORAGEFULL and stores nothing; the check comes before the key is
// looked up, so a replay is refused too while its tenant is over a quota.
func (s *Service) Create(ctx context.Context, r CreateRequest) (c *Created, replayed bool, err error) {
	if len(r.IdempotencyKey) > MaxIdempotencyKeyLen {
		return nil, false, commonops.Invalid(commonops.FieldError{Field: "Idempotency-Key", Message: fmt.Sprintf("must be at most %d characters", MaxIdempotencyKeyLen)})
	}
	now := s.now()
	c, ch, err := s.prepare(ctx, r.TenantID, r.Requester, r.Input, now)
	if err != nil {
		return nil, false, err
	}
	t := c.Task
	if err := s.checkQuotas(ctx, t.TenantID, t.TaskType, now); err != nil {
		return nil, false, err
	}
	var idem *store.Idempotency
	if r.IdempotencyKey != "" {
		body, err := json.Marshal(c)
		if err != nil {
			return nil, false, fmt.Errorf("encode create response: %w", err)
		}
		idem = &store.Idempotency{TenantID: r.TenantID, Key: r.IdempotencyKey, RequestHash: r.RequestHash, TaskID: t.ID, StatusCode: 201, Response: body, CreatedAt: now}
	}
	prior, err := s.Store.CreateTask(ctx, t, ch, idem)
	if err != nil {
		return nil, false, fmt.Errorf("create task: %w", err)
	}
	if prior != nil {
		if prior.RequestHash != r.RequestHash {
			return nil, false, commonops.Invalid(commonops.FieldError{Field: "Idempotency-Key", Message: "was already used with a different request body"})
		}
		first, err := decodeCreated(prior)
		if err != nil {
			return nil, false, err
		}
		return first, true, nil
	}
	s.created(t.TenantID)
	return c, false, nil
}

// prepare validates in and returns the task it creates with its upload URL
// when it has a file, and the change its creation records; nothing is
// stored.
func (s *Service) prepare(ctx context.Context, tenant, requester string, in commonops.CreateInput, now time.Time) (*Created, commonops.Change, error) {
	// Version 7 ids are time-ordered: new rows land at the right edge of
	// the primary-key index instead of on random pages.
	id, err := uuid.NewV7()
	if err != nil {
		return nil, commonops.Change{}, fmt.Errorf("task id: %w", err)
	}
	t, ch, err := commonops.NewTask(id.String(), tenant, requester, s.withTimeout(in), s.Limits, now)
	if err != nil {
		return nil, commonops.Change{}, err
	}
	if err := s.checkCreate(in); err != nil {
		return nil, commonops.Change{}, err
	}
	if err := s.checkCallback(t); err != nil {
		return nil, commonops.Change{}, err
	}
	c := &Created{Task: t, QueuePaused: s.queuePaused(ctx, tenant, t.TaskType)}
	if t.FileName != nil {
		exp := s.Defaults().URLExpiry
		var contentType string
		if t.ContentType != nil {
			contentType = *t.ContentType
		}
		u, err := s.Objects.PresignPut(ctx, objectstore.InputKey(t.ID, *t.FileName), objectstore.PutOptions{
			ContentType: contentType, MaxSize: s.maxFileSize(t), Expires: exp,
		})
		if err != nil {
			return nil, commonops.Change{}, fmt.Errorf("presign upload of task %s: %w", t.ID, err)
		}
		expiresAt := u.ExpiresAt.UTC()
		t.UploadExpiresAt = &expiresAt
		c.UploadURL, c.UploadMethod, c.UploadHeaders, c.UploadExpiresAt = &u.URL, &u.Method, u.Headers, &expiresAt
	}
	return c, ch, nil
}

// decodeCreated reads the answer an idempotency key stored.
func decodeCreated(prior *store.Idempotency) (*Created, error) {
	var first Created
	if err := json.Unmarshal(prior.Response, &first); err != nil {
		return nil, fmt.Errorf("decode stored response of key %q: %w", prior.Key, err)
	}
	return &first, nil
}

func (s *Service) maxFileSize(t *commonops.Task) int64 {
	if t.FileSize != nil {
		return *t.FileSize
	}
	if s.Limits.MaxFileSize > 0 {
		return s.Limits.MaxFileSize
	}
	return commonops.MaxFileSizeDefault
}

// Get returns one task of tenant.
func (s *Service) Get(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	t, err := s.getScoped(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	s.markAwaiting(t)
	return t, nil
}

// markAwaiting sets AwaitingWorker on tasks that have waited unclaimed past
// AwaitingWorkerAfter.
func (s *Service) markAwaiting(tasks ...*commonops.Task) {
	after := s.AwaitingWorkerAfter
	if after <= 0 {
		after = AwaitingWorkerAfterDefault
	}
	now := s.now()
	for _, t := range tasks {
		t.AwaitingWorker = t.Awaiting(after, now)
	}
}

// List returns a page of tenant's tasks. A filter out of bounds (see
// ListProblems) is EINVALID.
func (s *Service) List(ctx context.Context, f commonops.ListFilter) ([]*commonops.Task, int, error) {
	if fe := ListProblems(f); len(fe) > 0 {
		return nil, 0, commonops.Invalid(fe...)
	}
	tasks, total, err := s.Store.ListTasks(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	s.markAwaiting(tasks...)
	return tasks, total, nil
}

// Cancel cancels a task that has not ended.
func (s *Service) Cancel(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	now := s.now()
	return s.Store.UpdateTask(ctx, tenant, id, scoped(ctx, func(t *commonops.Task) (commonops.Change, error) { return t.Cancel(now) }))
}

// Retry puts a failed or cancelled task back to pending; force goes past
// maxRetries.
func (s *Service) Retry(ctx context.Context, tenant, id string, force bool) (*commonops.Task, error) {
	now := s.now()
	return s.Store.UpdateTask(ctx, tenant, id, scoped(ctx, func(t *commonops.Task) (commonops.Change, error) { return t.Retry(force, now) }))
}

// Delete deletes a terminal task with its logs, events and files.
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	t, err := s.Store.DeleteTask(ctx, tenant, id)
	if err != nil {
		return err
	}
	if err := s.Objects.DeletePrefix(ctx, objectstore.TaskPrefix(t.ID)); err != nil {
		return fmt.Errorf("delete files of task %s: %w", t.ID, err)
	}
	return nil
}

// ConfirmUpload verifies that the task's input file is in the object store
// (and has the announced size) and makes the task runnable; the task records
// the file's ETag (see DownloadURL). Calling it again after success is
// harmless.
func (s *Service) ConfirmUpload(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	t, err := s.getScoped(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if t.UploadStatus != commonops.UploadAwaiting || t.FileName == nil {
		// Let the transition explain why (no file, expired, already done).
		return s.Store.UpdateTask(ctx, tenant, id, func(t *commonops.Task) (commonops.Change, error) { return t.ConfirmUpload(s.now()) })
	}
	info, err := s.Objects.Stat(ctx, objectstore.InputKey(t.ID, *t.FileName))
	if commonops.ErrorCode(err) == commonops.ENOTFOUND {
		return nil, &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("the input file %q has not been uploaded yet: PUT it to the uploadUrl first", *t.FileName), Task: t}
	}
	if err != nil {
		return nil, fmt.Errorf("check upload of task %s: %w", t.ID, err)
	}
	// A size other than the announced one is the client's mismatch (409);
	// only a file over the service's limit is too large (413).
	if t.FileSize != nil && info.Size != *t.FileSize {
		return nil, &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("the uploaded file has %d bytes, but fileSize announced %d", info.Size, *t.FileSize), Task: t}
	}
	limit := s.Limits.MaxFileSize
	if limit <= 0 {
		limit = commonops.MaxFileSizeDefault
	}
	if info.Size > limit {
		return nil, &commonops.Error{Code: commonops.ETOOLARGE, Message: fmt.Sprintf("the uploaded file has %d bytes, over the limit of %d", info.Size, limit), Task: t}
	}
	now := s.now()
	return s.Store.UpdateTask(ctx, tenant, id, func(t *commonops.Task) (commonops.Change, error) { return t.ConfirmInput(info.ETag, info.Size, now) })
}

// Claim gives task id to workerID for a lease of leaseSeconds (0 for the
// default): the task is processing on a new attempt. ECONFLICT when it is
// not claimable; EINVALID for a workerID that is empty, not printable or
// over MaxWorkerIDLen, or a lease over LeaseMax.
func (s *Service) Claim(ctx context.Context, tenant, id, workerID string, leaseSeconds int) (*commonops.Task, error) {
	if err := checkClaim(workerID, leaseSeconds); err != nil {
		return nil, err
	}
	now, lease := s.now(), s.lease(leaseSeconds)
	t, err := s.Store.ClaimTask(ctx, tenant, id, store.ClaimParams{WorkerID: workerID, Lease: lease, Now: now, Kinds: scopeOf(ctx).kinds()})
	if t, err = claimScoped(ctx, t, err); err != nil {
		return nil, err
	}
	s.recordClaims(t)
	return t, nil
}

// ClaimEvent claims, for workerID with the default lease, the task a
// pub/sub event describes, only if the stored task is of the event's tenant
// and kind. The event is a hint that anyone reaching the subscriber could
// forge or replay: what the worker then runs comes from the returned,
// stored task. A stored task of another kind is ECONFLICT wrapping
// commonops.ErrKindMismatch; one of another tenant, or none, ENOTFOUND.
func (s *Service) ClaimEvent(ctx context.Context, ev *commonops.Task, workerID string) (*commonops.Task, error) {
	if err := checkClaim(workerID, 0); err != nil {
		return nil, err
	}
	t, err := s.Store.ClaimTask(ctx, ev.TenantID, ev.ID, store.ClaimParams{WorkerID: workerID, Lease: s.lease(0), Now: s.now(),
		Kinds: []commonops.Kind{{TaskType: ev.TaskType, EntityType: ev.EntityType}}})
	if err == nil {
		s.recordClaims(t)
	}
	return t, err
}

// ClaimNext claims up to limit runnable tasks of the given kinds. The
// workerID is held to the rules of Claim.
func (s *Service) ClaimNext(ctx context.Context, workerID string, kinds []commonops.Kind, limit int) ([]*commonops.Task, error) {
	var fe fieldErrors
	checkWorkerID(&fe, workerID)
	if err := fe.err(); err != nil {
		return nil, err
	}
	claimed, err := s.Store.ClaimNext(ctx, store.ClaimParams{WorkerID: workerID, Lease: s.lease(0), Limit: limit, Now: s.now(), Kinds: kinds,
		Weights: s.FairWeights, Usage: s.usage()})
	if err != nil {
		return nil, err
	}
	s.recordClaims(claimed...)
	return claimed, nil
}

// Progress records a worker's report and renews its lease. The answer
// carries cancelRequested; a cancelled task answers ECONFLICT.
func (s *Service) Progress(ctx context.Context, tenant, id string, p commonops.Progress) (*commonops.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var out completionFiles
	if p.Status != nil && *p.Status == commonops.StatusCompleted {
		t, err := s.getScoped(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		if out, err = s.filesOnCompletion(ctx, t, p); err != nil {
			return nil, err
		}
	}
	return s.Store.UpdateTask(ctx, tenant, id, scoped(ctx, s.applyProgress(p, out)))
}

// ProgressFrom is Progress for the in-process worker holding known, the
// task as the store last returned it to that worker: while nobody else has
// changed the task, the report is written without reading it again (see
// store.Store.UpdateTaskFrom).
func (s *Service) ProgressFrom(ctx context.Context, known *commonops.Task, p commonops.Progress) (*commonops.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out, err := s.filesOnCompletion(ctx, known, p)
	if err != nil {
		return nil, err
	}
	return s.Store.UpdateTaskFrom(ctx, known, s.applyProgress(p, out))
}

// applyProgress applies p; a report that completes the task records out,
// the files found for it (see filesOnCompletion).
func (s *Service) applyProgress(p commonops.Progress, out completionFiles) func(*commonops.Task) (commonops.Change, error) {
	now, lease := s.now(), s.lease(0)
	return func(t *commonops.Task) (commonops.Change, error) {
		if err := t.CheckDeadline(now); err != nil {
			return commonops.Change{}, err
		}
		ch, err := t.ApplyProgress(p, lease, s.RetryDelay(t.RetryCount), now)
		if err == nil && ch.Event == commonops.EventCompleted {
			confirmOutput(t, out.output)
			t.ConfirmErrors(out.errorsSize)
		}
		return ch, err
	}
}

// Heartbeat renews the lease of attempt; an attempt past its deadline is
// ECONFLICT (its message starts with commonops.TimeoutPrefix), which stops
// the worker.
func (s *Service) Heartbeat(ctx context.Context, tenant, id string, attempt int) (*commonops.Task, error) {
	now, lease := s.now(), s.lease(0)
	return s.Store.UpdateTask(ctx, tenant, id, func(t *commonops.Task) (commonops.Change, error) {
		if err := t.CheckDeadline(now); err != nil {
			return commonops.Change{}, err
		}
		return t.Heartbeat(&attempt, lease, now)
	})
}

// FailAttempt ends attempt with cause: retried with backoff unless permanent
// or out of retries.
func (s *Service) FailAttempt(ctx context.Context, tenant, id string, attempt int, cause string, permanent bool) (*commonops.Task, error) {
	if len(cause) > commonops.MaxMessageLen || !commonops.ValidText(cause) {
		return nil, commonops.Invalid(commonops.FieldError{Field: "errorMessage", Message: fmt.Sprintf("must be at most %d bytes of UTF-8 text without NUL characters", commonops.MaxMessageLen)})
	}
	now := s.now()
	return s.Store.UpdateTask(ctx, tenant, id, func(t *commonops.Task) (commonops.Change, error) {
		if err := t.CheckAttempt(&attempt); err != nil {
			return commonops.Change{}, err
		}
		return t.FailAttempt(cause, permanent, s.RetryDelay(t.RetryCount), now), nil
	})
}

// Release hands attempt's task back to pending without counting a retry
// (its worker is shutting down).
func (s *Service) Release(ctx context.Context, tenant, id string, attempt int) (*commonops.Task, error) {
	now := s.now()
	return s.Store.UpdateTask(ctx, tenant, id, func(t *commonops.Task) (commonops.Change, error) {
		return t.Release(&attempt, now)
	})
}

// MaxLogsPerCall bounds one logs call; MaxLogMessageLen one message.
const (
	MaxLogsPerCall   = 1000
	MaxLogMessageLen = 8 << 10
	MaxLogDetailsLen = 16 << 10
)

// AppendLogs adds a worker's log lines; a stale attempt is ECONFLICT, an
// attempt below 1 EINVALID.
func (s *Service) AppendLogs(ctx context.Context, tenant, id string, attempt *int, logs []commonops.LogEntry) error {
	var fe fieldErrors
	checkAttempt(&fe, attempt)
	if err := fe.err(); err != nil {
		return err
	}
	var fields []commonops.FieldError
	if len(logs) == 0 {
		fields = append(fields, commonops.FieldError{Field: "logs", Message: "must hold at least one entry"})
	}
	if len(logs) > MaxLogsPerCall {
		fields = append(fields, commonops.FieldError{Field: "logs", Message: fmt.Sprintf("must hold at most %d entries", MaxLogsPerCall)})
	}
	now := s.now()
	for i := range logs {
		l := &logs[i]
		if l.Level == "" {
			l.Level = commonops.LogInfo
		}
		if !l.Level.Valid() {
			fields = append(fields, commonops.FieldError{Field: fmt.Sprintf("logs[%d].level", i), Message: "must be debug, info, warn or error"})
		}
		if l.Message == "" || len(l.Message) > MaxLogMessageLen || !commonops.ValidText(l.Message) {
			fields = append(fields, commonops.FieldError{Field: fmt.Sprintf("logs[%d].message", i), Message: fmt.Sprintf("must be 1 to %d bytes of UTF-8 text without NUL characters", MaxLogMessageLen)})
		}
		if len(l.Details) > MaxLogDetailsLen {
			fields = append(fields, commonops.FieldError{Field: fmt.Sprintf("logs[%d].details", i), Message: fmt.Sprintf("must be at most %d bytes", MaxLogDetailsLen)})
		}
		l.TenantID, l.TaskID, l.CreatedAt = tenant, id, now
		if attempt != nil {
			l.Attempt = *attempt
		}
	}
	if len(fields) > 0 {
		return commonops.Invalid(fields...)
	}
	if err := s.checkScope(ctx, tenant, id); err != nil {
		return err
	}
	return s.Store.AppendLogs(ctx, tenant, id, attempt, logs)
}

// OutputURL gives the worker of attempt a pre-signed URL to upload its
// output file to, under a key of that attempt (objectstore.AttemptOutputKey)
// which the local store refuses once the attempt ends; the name is recorded
// when the worker reports outputFileName (or completes). EINVALID for a missing or unusable file
// name, a content type that is not a short printable media type, or an
// attempt below 1; EUNAVAILABLE without an object store.
func (s *Service) OutputURL(ctx context.Context, tenant, id string, attempt *int, fileName, contentType string) (*objectstore.SignedURL, error) {
	var fe fieldErrors
	if fileName == "" {
		fe.add("fileName", "is required")
	}
	if len(contentType) > commonops.MaxContentTypeLen || !commonops.Printable(contentType) {
		fe.add("contentType", "must be a media type of at most %d characters", commonops.MaxContentTypeLen)
	}
	checkAttempt(&fe, attempt)
	if err := fe.err(); err != nil {
		return nil, err
	}
	if s.Objects == nil {
		return nil, errNoObjects()
	}
	name, err := commonops.SanitizeFileName(fileName)
	if err != nil {
		return nil, commonops.Invalid(commonops.FieldError{Field: "fileName", Message: err.Error()})
	}
	t, err := s.getScoped(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if err := t.CheckAttempt(attempt); err != nil {
		return nil, err
	}
	return s.Objects.PresignPut(ctx, objectstore.AttemptOutputKey(t.ID, t.Attempt, name), objectstore.PutOptions{ContentType: contentType, Expires: s.Defaults().URLExpiry})
}

// Which files a download can name.
const (
	FileOutput = "output"
	FileErrors = "errors"
	FileInput  = "input"
	// FileResults is an import's results.csv: a line per input row with
	// its outcome (bulk.ResultsFile).
	FileResults = "results"
	// FileUnprocessed is the rows of an import's input that a cancelled or
	// failed import did not reach, in the input's own format, named
	// unprocessed-<input file name> (bulk.UnprocessedFile).
	FileUnprocessed = "unprocessed"
)

// UnprocessedName is the file name of a task's unprocessed rows.
func UnprocessedName(t *commonops.Task) string {
	if t.FileName == nil {
		return "unprocessed"
	}
	return "unprocessed-" + *t.FileName
}

// Download is where to fetch one of a task's files.
type Download struct {
	DownloadURL string    `json:"downloadUrl"`
	FileName    string    `json:"fileName"`
	ExpiresAt   time.Time `json:"expiresAt"`
}

// DownloadURL returns a pre-signed URL for the task's output, errors,
// input, results or unprocessed file: ENOTFOUND when there is no such file, ECONFLICT when the task is not
// in a state that has it yet or the file changed after it was confirmed (its
// ETag is not the one the task recorded); EINVALID when which is not one of
// the file kinds ("" is output); EUNAVAILABLE without an object store.
func (s *Service) DownloadURL(ctx context.Context, tenant, id, which string) (*Download, error) {
	switch which {
	case "", FileOutput, FileErrors, FileInput, FileResults, FileUnprocessed:
	default:
		return nil, commonops.Invalid(commonops.FieldError{Field: "file", Message: fmt.Sprintf("must be %s, %s, %s, %s or %s", FileOutput, FileErrors, FileInput, FileResults, FileUnprocessed)})
	}
	if which == "" {
		which = FileOutput
	}
	if s.Objects == nil {
		return nil, errNoObjects()
	}
	t, err := s.getScoped(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	var key, name string
	var etag *string // the ETag the task recorded of the file, if any
	switch which {
	case FileOutput:
		if t.OutputFileName == nil {
			if !t.Status.Terminal() {
				return nil, &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("task %s is %s: its output exists once it completes", t.ID, t.Status), Task: t}
			}
			return nil, commonops.Errorf(commonops.ENOTFOUND, "no output: task %s has no output file", t.ID)
		}
		name = *t.OutputFileName
		if t.OutputObject != nil {
			key, etag = *t.OutputObject, t.OutputETag
			break
		}
		// No output recorded: the task did not complete (or completed
		// before tasks recorded it); serve what its last attempt left.
		info, err := s.findOutput(ctx, t, name)
		if err != nil && commonops.ErrorCode(err) != commonops.ENOTFOUND {
			return nil, fmt.Errorf("find output of task %s: %w", t.ID, err)
		}
		key = cmpKey(info.Key, objectstore.OutputKey(t.ID, name))
	case FileErrors:
		key, name = objectstore.ErrorsKey(t.ID), "errors.csv"
		if t.ErrorsFileName != nil {
			name = *t.ErrorsFileName
		}
	case FileInput:
		if t.FileName == nil {
			return nil, commonops.Errorf(commonops.ENOTFOUND, "no input: task %s was created without a file", t.ID)
		}
		if t.UploadStatus != commonops.UploadUploaded {
			return nil, &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("the input file of task %s is %s, not uploaded", t.ID, t.UploadStatus), Task: t}
		}
		key, name, etag = objectstore.InputKey(t.ID, *t.FileName), *t.FileName, t.InputETag
	case FileResults:
		key, name = objectstore.ReportKey(t.ID, "results.csv"), "results.csv"
	case FileUnprocessed:
		name = UnprocessedName(t)
		key = objectstore.ReportKey(t.ID, name)
	default:
		return nil, commonops.Invalid(commonops.FieldError{Field: "file", Message: "must be output, errors, input, results or unprocessed"})
	}
	if err := s.statConfirmed(ctx, t, which, key, etag); err != nil {
		return nil, err
	}
	u, err := s.Objects.PresignGet(ctx, key, objectstore.GetOptions{FileName: name, Expires: s.Defaults().URLExpiry})
	if err != nil {
		return nil, fmt.Errorf("presign download of %s: %w", key, err)
	}
	return &Download{DownloadURL: u.URL, FileName: name, ExpiresAt: u.ExpiresAt.UTC()}, nil
}

// Logs returns a page of a task's logs; ENOTFOUND for an unknown task,
// EINVALID for a filter out of bounds (see LogProblems).
func (s *Service) Logs(ctx context.Context, f commonops.LogFilter) ([]commonops.LogEntry, int, error) {
	if fe := LogProblems(f); len(fe) > 0 {
		return nil, 0, commonops.Invalid(fe...)
	}
	if _, err := s.getScoped(ctx, f.TenantID, f.TaskID); err != nil {
		return nil, 0, err
	}
	return s.Store.ListLogs(ctx, f)
}

// Events returns a task's events after afterID; ENOTFOUND for an unknown task.
func (s *Service) Events(ctx context.Context, tenant, id string, afterID int64, limit int) ([]commonops.Event, error) {
	if _, err := s.getScoped(ctx, tenant, id); err != nil {
		return nil, err
	}
	return s.Store.ListEvents(ctx, tenant, id, afterID, limit)
}

// IsConflict reports whether err is a state conflict (ECONFLICT).
func IsConflict(err error) bool {
	var e *commonops.Error
	return errors.As(err, &e) && e.Code == commonops.ECONFLICT
}

// UploadReceived is the local object store telling that the input file of
// task taskID arrived, as info describes it. It confirms the upload, the
// task recording the file's ETag, unless the size differs from the announced
// fileSize (then the client's upload-complete call explains the mismatch).
func (s *Service) UploadReceived(ctx context.Context, taskID string, info objectstore.Info) error {
	now := s.now()
	_, err := s.Store.UpdateTask(ctx, "", taskID, func(t *commonops.Task) (commonops.Change, error) {
		if t.FileSize != nil && *t.FileSize != info.Size {
			return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "uploaded %d bytes, announced %d", info.Size, *t.FileSize)
		}
		return t.ConfirmInput(info.ETag, info.Size, now)
	})
	return err
}
