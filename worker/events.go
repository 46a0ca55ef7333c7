package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/tracing"
)

// HandleEvent is the pub/sub entry point (Dapr subscriber, embedded bus).
// An event is only a hint: on a created or retried event the pool claims
// the task it names, when it runs the kind the event gives and has a free
// slot, and the claim succeeds only if the stored task is of that tenant and
// kind (Service.ClaimEvent); everything the processor then sees comes from
// the stored task. An event that disagrees with the store is logged and
// dropped; a task someone else holds, one that is
// not runnable, or a full pool answer nil (the poller finds it later).
// While the pool has a backlog (see Pool.backlog), a created or retried
// event claims nothing and only wakes the poller: a claim of the event's
// task would jump the queue, the tenants' fair turns included, which only
// ClaimNext keeps. On a
// cancelled event it stops the task's processor once the store confirms the
// running attempt may no longer write (see confirmCancel). An error means
// the store could not be reached: the caller should redeliver.
//
// With tracing on, the delivery is a span continuing the event's trace, and
// the claim and the run it starts are its children.
func (p *Pool) HandleEvent(ctx context.Context, topic string, task *commonops.Task) (err error) {
	if task == nil || task.ID == "" {
		return nil
	}
	ctx, span := tracing.Start(ctx, "deliver "+topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", topic), attribute.String("commonops.task.id", task.ID)))
	defer func() { tracing.End(span, err) }()
	switch topic {
	case commonops.TopicCancelled:
		return p.confirmCancel(ctx, task)
	case commonops.TopicCreated, commonops.TopicRetried:
	default:
		return nil
	}
	proc, ok := p.cfg.Registry.Lookup(task.TaskType, task.EntityType)
	if !ok || p.runsNewer(task) {
		return nil
	}
	if !task.UpdatedAt.IsZero() {
		delay := time.Since(task.UpdatedAt)
		p.metrics.eventDelay.Observe(max(delay, 0).Seconds())
		if delay > LateEvent {
			// The events lag behind the tasks (a broker's backlog): the
			// tasks created since wait behind events that are still on
			// their way, so the poller takes them, this one with them.
			p.metrics.lateEvents.Inc()
			p.missed()
			return nil
		}
	}
	ok, round := p.reserve(task.TaskType)
	if !ok && round != nil {
		// A poll round holds the free slots while it queries: it may have
		// claimed this task, or give back a slot for it.
		select {
		case <-round:
		case <-ctx.Done():
			return ctx.Err()
		}
		ok, _ = p.reserve(task.TaskType)
	}
	if !ok {
		// No slot: a round after the ones in flight takes the task when
		// one frees, which costs nothing while the pool is full.
		p.missed()
		return nil
	}
	defer p.handling.Done()
	// As in claimFree, the claim outlives the delivery's context.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	cctx, claimSpan := tracing.Start(cctx, "claim", trace.WithAttributes(attribute.String("commonops.task.id", task.ID),
		attribute.String("commonops.claim.source", "event")))
	t, err := p.svc.ClaimEvent(cctx, task, p.cfg.WorkerID)
	claimSpan.SetAttributes(attribute.Bool("commonops.claimed", err == nil))
	claimSpan.End()
	cancel()
	if err != nil {
		p.release(task.TaskType)
		if errors.Is(err, commonops.ErrKindMismatch) {
			p.log.Warn("dropped an event that disagrees with the stored task", "topic", topic, "task", task.ID,
				"eventTaskType", task.TaskType, "eventEntityType", task.EntityType, "err", err)
			return nil
		}
		if errors.Is(err, commonops.ErrHeld) {
			p.missed() // paused or at its limit: a poll round takes it when it may start
			return nil
		}
		switch commonops.ErrorCode(err) {
		case commonops.ECONFLICT, commonops.ENOTFOUND, commonops.EINVALID:
			return nil // claimed already, ended, or gone
		}
		return fmt.Errorf("claim task %s: %w", task.ID, err)
	}
	p.metrics.claims.WithLabelValues("event").Inc()
	// The run continues the trace of the event that started it, after its
	// claim.
	p.launch(t, proc, commonops.TraceParent(cctx))
	return nil
}

// runsNewer reports whether this pool already runs an attempt of ev's task
// newer than ev: the poller claimed it before its event came.
func (p *Pool) runsNewer(ev *commonops.Task) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.running[ev.ID]
	return r != nil && r.task.Attempt > ev.Attempt
}

// confirmCancel handles a cancelled event. The event is only a hint: it may
// be late (redelivered after a retry and a new claim) or forged by anyone
// reaching the subscriber. So the running attempt is stopped only when the
// store, read with the run's own tenant, says that attempt may no longer
// write: the task was cancelled or ended, or moved to another attempt. An
// event about an attempt older than the running one is ignored.
func (p *Pool) confirmCancel(ctx context.Context, ev *commonops.Task) error {
	p.mu.Lock()
	r := p.running[ev.ID]
	p.mu.Unlock()
	if r == nil || ev.Attempt < r.task.Attempt {
		return nil
	}
	cur, err := p.svc.Get(ctx, r.task.TenantID, r.task.ID)
	switch {
	case commonops.ErrorCode(err) == commonops.ENOTFOUND:
		r.cancel(ErrLeaseLost) // deleted under us: nothing left to write to
		return nil
	case err != nil:
		return fmt.Errorf("check cancel of task %s: %w", ev.ID, err)
	}
	attempt := r.task.Attempt
	if cur.CheckAttempt(&attempt) == nil {
		return nil // the running attempt still holds the task
	}
	if cur.Status == commonops.StatusCancelled {
		r.cancel(ErrTaskCancelled)
	} else {
		r.cancel(ErrLeaseLost)
	}
	return nil
}
