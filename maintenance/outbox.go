package maintenance

import (
	"context"
	"time"
)

// pruneOutbox deletes up to a batch of outbox rows published more than
// OutboxRetention ago.
func (r *Runner) pruneOutbox(ctx context.Context, now time.Time) (int, error) {
	return r.svc.PruneOutbox(ctx, now.Add(-r.cfg.OutboxRetention), r.cfg.BatchSize)
}
