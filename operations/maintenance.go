package operations

import (
	"context"
	"fmt"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// This file holds the calls of the maintenance role (DESIGN.md §7): finding
// candidate tasks across tenants, the transitions the jobs apply to them,
// leadership and outbox pruning. With them, maintenance reaches the store
// only through the Service, like httpapi and the worker.

// TaskRef names a task across tenants, as Sweep returns it.
type TaskRef = store.TaskRef

// SweepFilter selects tasks across tenants for a maintenance job; see
// store.SweepFilter for its paging through AfterID.
type SweepFilter = store.SweepFilter

// Sweep returns up to f.Limit references to tasks matching f, across
// tenants, in id order.
func (s *Service) Sweep(ctx context.Context, f SweepFilter) ([]TaskRef, error) {
	refs, err := s.Store.Sweep(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	return refs, nil
}

// Promote makes a scheduled task pending once its time has come by now;
// ECONFLICT when it is not due or no longer scheduled.
func (s *Service) Promote(ctx context.Context, ref TaskRef, now time.Time) (*commonops.Task, error) {
	return s.Store.UpdateTask(ctx, ref.TenantID, ref.ID, func(t *commonops.Task) (commonops.Change, error) {
		return t.Promote(now)
	})
}

// RescueLease ends the attempt of a processing task whose lease lapsed by
// now (its worker crashed or hangs): the task goes back to pending after the
// retry backoff, or fails when its retries are spent. ECONFLICT when the
// task holds no lapsed lease.
func (s *Service) RescueLease(ctx context.Context, ref TaskRef, now time.Time) (*commonops.Task, error) {
	return s.Store.UpdateTask(ctx, ref.TenantID, ref.ID, func(t *commonops.Task) (commonops.Change, error) {
		return t.ExpireLease(s.RetryDelay(t.RetryCount), now)
	})
}

// ExpireUpload fails a task whose input file never arrived
// (uploadStatus=expired). It first looks for the file once more: when it
// arrived after all, the upload is confirmed instead and the answer is
// ECONFLICT, since the task did not expire.
func (s *Service) ExpireUpload(ctx context.Context, ref TaskRef, now time.Time) (*commonops.Task, error) {
	t, err := s.ConfirmUpload(ctx, ref.TenantID, ref.ID)
	switch {
	case err == nil:
		return nil, &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("the input file of task %s arrived after all", ref.ID), Task: t}
	case !IsConflict(err):
		return nil, err
	}
	return s.Store.UpdateTask(ctx, ref.TenantID, ref.ID, func(t *commonops.Task) (commonops.Change, error) {
		return t.ExpireUpload(now)
	})
}

// FailUnclaimed fails a runnable pending task that no worker took within
// wait of its last change (or of the end of its backoff) by now: its task
// type probably has no processor anywhere. ECONFLICT when the task waits for
// its upload, changed within wait, backs off past now-wait, or waits behind
// a flow control (its type is paused or limited: a queue held back on
// purpose is not a queue nobody serves).
func (s *Service) FailUnclaimed(ctx context.Context, ref TaskRef, wait time.Duration, now time.Time) (*commonops.Task, error) {
	cutoff := now.Add(-wait)
	fcs, err := s.Store.ListFlowControls(ctx)
	if err != nil {
		return nil, fmt.Errorf("list flow controls: %w", err)
	}
	return s.Store.UpdateTask(ctx, ref.TenantID, ref.ID, func(t *commonops.Task) (commonops.Change, error) {
		room, paused := commonops.FlowRoom(fcs, t.TenantID, t.TaskType, func(string, string) int { return 0 })
		switch {
		case paused || room >= 0:
			return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "task %s waits behind a flow control of task type %s", t.ID, t.TaskType)
		case t.UploadStatus == commonops.UploadAwaiting || t.UploadStatus == commonops.UploadExpired:
			return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "task %s waits for its upload", t.ID)
		case t.UpdatedAt.After(cutoff):
			return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "task %s changed within the last %s", t.ID, wait)
		case t.AvailableAt != nil && t.AvailableAt.After(cutoff):
			return commonops.Change{}, commonops.Errorf(commonops.ECONFLICT, "task %s backs off until %s", t.ID, t.AvailableAt)
		}
		return t.FailUnclaimed(wait, now)
	})
}

// TimeOut fails the attempt of a processing task that ran past its
// deadline by now, with an error message starting with
// commonops.TimeoutPrefix; it is retried with backoff while retries remain.
// ECONFLICT when the task has no attempt past its deadline.
func (s *Service) TimeOut(ctx context.Context, ref TaskRef, now time.Time) (*commonops.Task, error) {
	return s.Store.UpdateTask(ctx, ref.TenantID, ref.ID, func(t *commonops.Task) (commonops.Change, error) {
		return t.TimeOut(s.RetryDelay(t.RetryCount), now)
	})
}

// TryLead takes or renews the named leadership for holder for ttl and
// reports whether holder leads. One holder leads at a time across every
// replica sharing the store.
func (s *Service) TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	return s.Store.TryLead(ctx, name, holder, ttl)
}

// Resign gives up holder's leadership, so another replica takes over at its
// next try rather than after the ttl.
func (s *Service) Resign(ctx context.Context, name, holder string) error {
	return s.Store.Resign(ctx, name, holder)
}

// PruneOutbox deletes up to limit outbox rows published before sentBefore
// and returns how many it deleted.
func (s *Service) PruneOutbox(ctx context.Context, sentBefore time.Time, limit int) (int, error) {
	n, err := s.Store.PruneOutbox(ctx, sentBefore, limit)
	if err != nil {
		return n, fmt.Errorf("prune outbox: %w", err)
	}
	return n, nil
}
