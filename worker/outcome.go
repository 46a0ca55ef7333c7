package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// Outcomes counted in commonops_worker_tasks_total.
const (
	outcomeCompleted = "completed"
	outcomeFailed    = "failed"
	outcomePanicked  = "panicked"
	outcomeCancelled = "cancelled"
	outcomeLeaseLost = "lease_lost"
	outcomeAbandoned = "abandoned"
	outcomeReleased  = "released"
)

// finish records the attempt's outcome. It writes nothing when the task was
// cancelled, the lease was lost, or the pool was killed (Start's ctx done).
func (p *Pool) finish(ctx context.Context, j *job, err error, log *slog.Logger) string {
	cause := context.Cause(ctx)
	switch {
	case p.base.Err() != nil:
		log.Warn("pool halted while the task ran; its lease will lapse")
		return outcomeAbandoned
	case errors.Is(cause, ErrTaskCancelled):
		log.Info("task cancelled; processor stopped")
		return outcomeCancelled
	case errors.Is(cause, ErrLeaseLost):
		log.Warn("lease lost; the attempt's result is dropped")
		return outcomeLeaseLost
	}
	wctx := j.base // not cancelled by Stop: the final write must land
	if err == nil {
		if ferr := j.rep.finalize(wctx, commonops.StatusCompleted, "", false); ferr != nil {
			return p.finishFailed(j, ferr, log)
		}
		log.Debug("task completed")
		return outcomeCompleted
	}
	outcome := outcomeFailed
	msg, permanent := "", IsPermanent(err)
	var pe *panicError
	panicked := errors.As(err, &pe)
	if errors.Is(cause, ErrShutdown) && errors.Is(err, context.Canceled) && !permanent && !panicked {
		// Stopped by us, not failed by the processor: no retry is used up. A
		// processor error that merely came back after the stop is a failure.
		return p.handBack(wctx, j, log)
	}
	switch {
	case panicked:
		outcome = outcomePanicked
		msg = pe.Error()
		log.Error("processor panicked", "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
	default:
		msg = err.Error()
	}
	msg = storableText(msg, commonops.MaxMessageLen)
	if ferr := j.rep.finalize(wctx, commonops.StatusFailed, msg, permanent); ferr != nil {
		p.finishFailed(j, ferr, log)
		return outcome
	}
	log.Info("attempt failed", "err", msg, "permanent", permanent)
	return outcome
}

// handBack sends the attempt's last progress and logs, then returns its task
// to pending without counting a retry: the pool stopped it.
func (p *Pool) handBack(ctx context.Context, j *job, log *slog.Logger) string {
	if err := j.rep.flush(ctx, nil); err != nil && !operations.IsConflict(err) {
		log.Warn("last progress report before handing the task back failed", "err", err)
	}
	t := j.task
	err := retryTransient(ctx, func() error {
		_, err := p.svc.Release(ctx, t.TenantID, t.ID, t.Attempt)
		return err
	})
	if err != nil {
		return p.finishFailed(j, err, log)
	}
	log.Info("worker stopping; task handed back to pending")
	return outcomeReleased
}

func (p *Pool) finishFailed(j *job, err error, log *slog.Logger) string {
	if operations.IsConflict(err) {
		log.Info("final write refused; the task moved on", "err", err)
		return outcomeLeaseLost
	}
	log.Error("could not record the task's outcome; its lease will lapse", "err", err)
	return outcomeAbandoned
}
