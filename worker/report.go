package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// maxBufferedLogs bounds the log lines a job keeps while the store is
// unreachable; beyond it new lines are dropped and counted.
const maxBufferedLogs = 10 * operations.MaxLogsPerCall

// reporter coalesces a job's progress and logs and writes them at most once
// per interval; sync and finalize write at once, with whatever is pending.
type reporter struct {
	j        *job
	interval time.Duration

	mu      sync.Mutex
	pending commonops.Progress
	dirty   bool
	logs    []commonops.LogEntry
	dropped int

	flushMu sync.Mutex // one write at a time, so counts never go backwards
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

func (r *reporter) start() { go r.loop() }

// stop ends the background flushes; the final state is written by finalize.
func (r *reporter) stop() {
	close(r.quit)
	<-r.done
}

func (r *reporter) signal() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// progress is u as a report to the store, its message made storable.
func (u Update) progress() commonops.Progress {
	p := commonops.Progress{
		Progress: u.Progress, TotalItems: u.TotalItems, TotalItemsEstimated: u.TotalItemsEstimated,
		EtaSeconds: u.EtaSeconds, ProcessedItems: u.ProcessedItems,
		SuccessItems: u.SuccessItems, FailedItems: u.FailedItems,
	}
	if u.Message != nil {
		m := storableText(*u.Message, commonops.MaxMessageLen)
		p.Message = &m
	}
	return p
}

func (r *reporter) update(u Update) {
	p := u.progress()
	r.mu.Lock()
	r.pending = r.pending.Merge(p.Clone()) // cloned: the processor may reuse its variables
	r.dirty = true
	r.mu.Unlock()
	r.signal()
}

func (r *reporter) addLog(level commonops.LogLevel, message string, details any) {
	if !level.Valid() {
		level = commonops.LogInfo
	}
	message = storableText(message, operations.MaxLogMessageLen)
	if message == "" {
		message = "(empty)"
	}
	var raw json.RawMessage
	if details != nil {
		b, err := json.Marshal(details)
		switch {
		case err != nil:
			raw, _ = json.Marshal(map[string]string{"error": "details could not be encoded: " + err.Error()})
		case len(b) > operations.MaxLogDetailsLen:
			raw, _ = json.Marshal(map[string]string{"error": fmt.Sprintf("details of %d bytes dropped (limit %d)", len(b), operations.MaxLogDetailsLen)})
		default:
			raw = b
		}
	}
	r.mu.Lock()
	if len(r.logs) >= maxBufferedLogs {
		r.dropped++
	} else {
		r.logs = append(r.logs, commonops.LogEntry{Level: level, Message: message, Details: raw})
	}
	r.mu.Unlock()
	r.signal()
}

func (r *reporter) loop() {
	defer close(r.done)
	var last time.Time
	for {
		select {
		case <-r.quit:
			return
		case <-r.kick:
		}
		if wait := r.interval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-r.quit:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		if err := r.flush(r.j.base, nil); err != nil {
			if r.j.conflict(err) {
				return
			}
			if r.j.pool.base.Err() != nil {
				return
			}
			r.j.log.Warn("progress report failed; will retry", "err", err)
			r.signal()
		}
	}
}

// sync writes what is pending plus extra, now.
func (r *reporter) sync(ctx context.Context, extra commonops.Progress) error {
	err := r.flush(ctx, &extra)
	if err != nil {
		r.j.conflict(err)
	}
	return err
}

// flush sends the buffered logs, then the pending progress overlaid with
// final (when not nil) in one write. On a transient failure what was taken
// is put back for the next flush; an invalid report is dropped.
func (r *reporter) flush(ctx context.Context, final *commonops.Progress) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	p, dirty, logs, dropped := r.pending, r.dirty, r.logs, r.dropped
	r.pending, r.dirty, r.logs, r.dropped = commonops.Progress{}, false, nil, 0
	r.mu.Unlock()
	if dropped > 0 {
		logs = append(logs, commonops.LogEntry{Level: commonops.LogWarn, Message: fmt.Sprintf("%d log lines were dropped while the task store was unreachable", dropped)})
	}
	t := r.j.task
	attempt := t.Attempt
	for len(logs) > 0 {
		n := min(len(logs), operations.MaxLogsPerCall)
		err := r.j.pool.svc.AppendLogs(ctx, t.TenantID, t.ID, &attempt, logs[:n])
		if err != nil {
			if commonops.ErrorCode(err) == commonops.EINVALID {
				r.j.log.Error("log lines refused as invalid; dropped", "err", err, "lines", n)
				logs = logs[n:]
				continue
			}
			r.restore(p, dirty, logs)
			return fmt.Errorf("append logs of task %s: %w", t.ID, err)
		}
		logs = logs[n:]
	}
	if final == nil && !dirty {
		return nil
	}
	out := p
	if final != nil {
		out = p.Merge(*final)
	}
	out.Attempt = &attempt
	saved, err := r.j.pool.svc.ProgressFrom(ctx, r.j.latest.Load(), out)
	if err != nil {
		if commonops.ErrorCode(err) != commonops.EINVALID && !operations.IsConflict(err) {
			r.restore(p, dirty, nil)
		}
		return fmt.Errorf("report progress of task %s: %w", t.ID, err)
	}
	r.j.saved(saved)
	return nil
}

// restore puts back what a failed flush took, under anything newer.
func (r *reporter) restore(p commonops.Progress, dirty bool, logs []commonops.LogEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = p.Merge(r.pending)
	r.dirty = r.dirty || dirty
	r.logs = append(logs, r.logs...)
}

// finalize writes the attempt's outcome with the last pending report and
// logs. Transient failures are retried a few times; an invalid last report
// is dropped so that the outcome itself still lands.
func (r *reporter) finalize(ctx context.Context, status commonops.Status, msg string, permanent bool) error {
	final := commonops.Progress{Status: &status}
	if status == commonops.StatusFailed {
		final.ErrorMessage, final.Permanent = &msg, permanent
	}
	err := retryTransient(ctx, func() error { return r.flush(ctx, &final) })
	if commonops.ErrorCode(err) != commonops.EINVALID {
		return err
	}
	r.j.log.Warn("last progress report refused as invalid; recording the outcome alone", "err", err)
	t := r.j.task
	return retryTransient(ctx, func() error {
		var err error
		if status == commonops.StatusCompleted {
			attempt := t.Attempt
			_, err = r.j.pool.svc.Progress(ctx, t.TenantID, t.ID, commonops.Progress{Attempt: &attempt, Status: &status})
		} else {
			_, err = r.j.pool.svc.FailAttempt(ctx, t.TenantID, t.ID, t.Attempt, msg, permanent)
		}
		return err
	})
}

// retryTransient calls f up to five times while it fails for a reason other
// than the request itself (conflict, invalid, not found).
func retryTransient(ctx context.Context, f func() error) error {
	var err error
	for i := range 5 {
		if err = f(); err == nil {
			return nil
		}
		switch commonops.ErrorCode(err) {
		case commonops.ECONFLICT, commonops.EINVALID, commonops.ENOTFOUND:
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond << i):
		}
	}
	return err
}
