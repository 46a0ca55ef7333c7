package worker

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/tracing"
)

// launch runs a claimed task in its own goroutine; its slot is already
// reserved, and execute gives it back once the processor has returned.
func (p *Pool) launch(t *commonops.Task, proc Processor, traceParent string) {
	p.mu.Lock()
	ctx, cancel := context.WithCancelCause(commonops.WithTraceParent(p.jobsCtx, traceParent))
	r := &run{task: t, cancel: cancel}
	// A run of an earlier attempt may still be returning: the newest attempt
	// is the one events and Running see.
	p.running[t.ID] = r
	p.jobs.Add(1)
	p.mu.Unlock()
	p.metrics.running.Inc()
	go func() {
		defer p.jobs.Done()
		defer p.metrics.running.Dec()
		defer func() {
			p.mu.Lock()
			if p.running[t.ID] == r { // not a newer attempt launched since
				delete(p.running, t.ID)
			}
			p.mu.Unlock()
			cancel(nil)
		}()
		p.execute(ctx, cancel, t, proc)
	}()
}

// execute runs one attempt: processor, heartbeat, reporter, and the final
// write of its outcome.
func (p *Pool) execute(ctx context.Context, cancel context.CancelCauseFunc, t *commonops.Task, proc Processor) {
	start := time.Now()
	ctx, span := tracing.Start(ctx, "run "+t.TaskType, trace.WithAttributes(attribute.String("commonops.task.id", t.ID),
		attribute.String("commonops.task.type", t.TaskType), attribute.String("commonops.entity.type", t.EntityType),
		attribute.Int("commonops.task.attempt", t.Attempt)))
	defer span.End()
	log := p.log.With("task", t.ID, "taskType", t.TaskType, "entityType", t.EntityType, "attempt", t.Attempt)
	j := newJob(p, t, cancel, log)
	j.base = commonops.WithTraceParent(p.base, commonops.TraceParent(ctx))
	hbDone := make(chan struct{})
	hbStop := make(chan struct{})
	go func() {
		defer close(hbDone)
		p.heartbeatLoop(ctx, hbStop, j)
	}()
	j.rep.start()

	err := safeProcess(ctx, proc, j)

	close(hbStop)
	<-hbDone
	j.rep.stop()
	j.abortOpenWriters()
	// The slot is the processor's: the next task may start while this
	// one's outcome is written. Held through that write, a slot waited for
	// two of the store's round trips (the claim's and the outcome's) for
	// every task, so under load short tasks left the slots full, and the
	// pool idle, behind their writes.
	p.release(t.TaskType)
	outcome := p.finish(ctx, j, err, log)
	span.SetAttributes(attribute.String("commonops.outcome", outcome))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	p.metrics.tasks.WithLabelValues(t.TaskType, outcome).Inc()
	p.metrics.duration.WithLabelValues(t.TaskType).Observe(time.Since(start).Seconds())
}

// storableText makes s, which came from a processor, text the store
// accepts: bad UTF-8 replaced, NULs removed, then cut to at most n bytes
// without splitting a character.
func storableText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	return commonops.Truncate(s, n)
}

func safeProcess(ctx context.Context, proc Processor, j Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return proc.Process(ctx, j)
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("processor panicked: %v", e.value) }
