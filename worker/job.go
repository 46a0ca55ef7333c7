package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
)

// job is the Job of one attempt run by a Pool.
type job struct {
	pool *Pool
	task *commonops.Task // as claimed
	// latest is the task as the store last returned it to this run (by the
	// claim, a report or a heartbeat), for writes that need not read it again.
	latest atomic.Pointer[commonops.Task]
	// base is the context of the job's writes: the pool's (not cancelled by
	// a cancel or Stop) with the trace the run continues.
	base   context.Context
	cancel context.CancelCauseFunc
	log    *slog.Logger
	rep    *reporter

	wmu     sync.Mutex
	writers []*objWriter
}

// saved records t, just returned by the store, as the run's latest view of
// its task unless a newer one is already there.
func (j *job) saved(t *commonops.Task) {
	for {
		cur := j.latest.Load()
		if cur.Version >= t.Version || j.latest.CompareAndSwap(cur, t) {
			return
		}
	}
}

func newJob(p *Pool, t *commonops.Task, cancel context.CancelCauseFunc, log *slog.Logger) *job {
	j := &job{pool: p, task: t, cancel: cancel, log: log}
	j.latest.Store(t)
	j.rep = &reporter{
		j:        j,
		interval: p.cfg.ReportInterval,
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	return j
}

func (j *job) Task() *commonops.Task { return j.task.Clone() }

func (j *job) Input(ctx context.Context) (io.ReadCloser, error) {
	if j.task.FileName == nil {
		return nil, commonops.Errorf(commonops.ENOTFOUND, "task %s has no input file", j.task.ID)
	}
	key := objectstore.InputKey(j.task.ID, *j.task.FileName)
	if want := j.task.InputETag; want != nil {
		// The input is the file whose upload was confirmed: one written over
		// it later (a pre-signed PUT cannot be revoked on S3) is refused.
		info, err := j.pool.objects.Stat(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("check input %s: %w", key, err)
		}
		if info.ETag != *want {
			return nil, Permanent(&commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf(
				"the input file %q changed after its upload was confirmed; create a new task with the file", *j.task.FileName)})
		}
	}
	r, err := j.pool.objects.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("open input %s: %w", key, err)
	}
	return r, nil
}

func (j *job) Output(ctx context.Context, fileName, contentType string) (io.WriteCloser, error) {
	name, err := commonops.SanitizeFileName(fileName)
	if err != nil {
		return nil, commonops.Invalid(commonops.FieldError{Field: "fileName", Message: err.Error()})
	}
	key := objectstore.OutputKey(j.task.ID, name)
	return j.create(ctx, key, contentType, func(ctx context.Context) error {
		return j.rep.sync(ctx, commonops.Progress{OutputFileName: &name})
	})
}

// Errors writes the errors report; once it is closed the task names it
// (errorsFileName).
func (j *job) Errors(ctx context.Context) (io.WriteCloser, error) {
	return j.create(ctx, objectstore.ErrorsKey(j.task.ID), "text/csv", func(ctx context.Context) error {
		name := ErrorsFileName
		return j.rep.sync(ctx, commonops.Progress{ErrorsFileName: &name})
	})
}

// ErrorsFileName is the name the errors report downloads as.
const ErrorsFileName = "errors.csv"

func (j *job) File(ctx context.Context, name, contentType string) (io.WriteCloser, error) {
	return j.create(ctx, objectstore.ReportKey(j.task.ID, name), contentType, nil)
}

func (j *job) OpenFile(ctx context.Context, name string) (io.ReadCloser, error) {
	return j.pool.objects.Open(ctx, objectstore.ReportKey(j.task.ID, name))
}

func (j *job) DeleteFiles(ctx context.Context, dir string) error {
	return j.pool.objects.DeletePrefix(ctx, objectstore.ReportKey(j.task.ID, dir)+"/")
}

func (j *job) create(ctx context.Context, key, contentType string, onClose func(context.Context) error) (io.WriteCloser, error) {
	w, err := j.pool.objects.Create(ctx, key, contentType)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	ow := &objWriter{w: w, ctx: ctx, onClose: onClose}
	j.wmu.Lock()
	j.writers = append(j.writers, ow)
	j.wmu.Unlock()
	return ow, nil
}

// abortOpenWriters discards files the processor opened but never closed.
func (j *job) abortOpenWriters() {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	for _, w := range j.writers {
		w.abort()
	}
}

func (j *job) Report(u Update) { j.rep.update(u) }

func (j *job) Log(level commonops.LogLevel, message string, details any) {
	j.rep.addLog(level, message, details)
}

func (j *job) Checkpoint(ctx context.Context, checkpoint any, u Update) error {
	raw, err := json.Marshal(checkpoint)
	if err != nil {
		return fmt.Errorf("encode checkpoint of task %s: %w", j.task.ID, err)
	}
	j.rep.update(u)
	if err := j.rep.sync(ctx, commonops.Progress{Checkpoint: raw}); err != nil {
		return fmt.Errorf("save checkpoint of task %s: %w", j.task.ID, err)
	}
	return nil
}

// conflict reports whether err is a conflict and, if so, cancels the
// processor: the task was cancelled or this attempt lost its lease.
func (j *job) conflict(err error) bool {
	if !operations.IsConflict(err) {
		return false
	}
	cause := ErrLeaseLost
	var e *commonops.Error
	if errors.As(err, &e) && e.Task != nil && (e.Task.Status == commonops.StatusCancelled || e.Task.CancelRequested) {
		cause = ErrTaskCancelled
	}
	j.cancel(cause)
	return true
}

// objWriter commits its object on Close and then runs onClose.
type objWriter struct {
	w       objectstore.Writer
	ctx     context.Context
	onClose func(context.Context) error
	mu      sync.Mutex
	ended   bool
}

func (o *objWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

func (o *objWriter) Close() error {
	o.mu.Lock()
	if o.ended {
		o.mu.Unlock()
		return nil
	}
	o.ended = true
	o.mu.Unlock()
	if err := o.w.Close(); err != nil {
		return err
	}
	if o.onClose != nil {
		return o.onClose(o.ctx)
	}
	return nil
}

func (o *objWriter) abort() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.ended {
		o.ended = true
		_ = o.w.Abort()
	}
}
