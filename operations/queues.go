package operations

import (
	"context"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// The window of Queues: the last QueueWindow in QueueBuckets buckets, and at
// most QueueLeaseLimit leases (those expiring first).
const (
	QueueWindow     = time.Hour
	QueueBuckets    = 12
	QueueLeaseLimit = 100
)

// QueueReport is a tenant's queues as Queues measured them: per task type
// what waits and runs, and what ended in each bucket of the window from
// Since to Now (Bucket long, oldest first), and the active leases.
type QueueReport struct {
	Now    time.Time
	Since  time.Time
	Bucket time.Duration
	store.QueueStats
}

// Queues measures tenant's queues over the last QueueWindow. It is the
// tenant's whole picture, so a scope limited to its own tasks (a
// submitter's) is EFORBIDDEN.
func (s *Service) Queues(ctx context.Context, tenant string) (QueueReport, error) {
	if scopeOf(ctx).OwnedBy != "" {
		return QueueReport{}, commonops.Errorf(commonops.EFORBIDDEN, "the queues show every task of the tenant; this credential sees only its own tasks")
	}
	if tenant == "" {
		return QueueReport{}, commonops.Errorf(commonops.EINVALID, "the queues are measured for one tenant")
	}
	now := s.now()
	q := store.QueueQuery{
		TenantID: tenant, Now: now, Since: now.Add(-QueueWindow),
		Bucket: QueueWindow / QueueBuckets, LeaseLimit: QueueLeaseLimit,
	}
	st, err := s.Store.QueueStats(ctx, q)
	if err != nil {
		return QueueReport{}, err
	}
	return QueueReport{Now: now, Since: q.Since, Bucket: q.Bucket, QueueStats: st}, nil
}

// QueueGauges measures every tenant's queues now, without history or
// leases: the figures of the queue metrics (a background role).
func (s *Service) QueueGauges(ctx context.Context) (now time.Time, queues []store.Queue, err error) {
	now = s.now()
	st, err := s.Store.QueueStats(ctx, store.QueueQuery{Now: now})
	return now, st.Queues, err
}
