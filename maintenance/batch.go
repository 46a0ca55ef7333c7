package maintenance

import (
	"context"
	"errors"
	"fmt"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// each applies apply to one batch of the tasks f selects; a task someone
// else moved meanwhile or that is not ready yet (conflict) or deleted (not
// found) is skipped. It returns how many apply changed.
//
// Batches page through the candidates across ticks: each starts after the
// last task the previous batch of the same sweep (named by key) handed out,
// and a short batch sends the next one back to the start. So tasks a job
// keeps skipping (an upload that never comes) cannot fill every batch and
// starve the ones behind them; a task waits at most one pass over the
// candidates.
func (r *Runner) each(ctx context.Context, key string, f operations.SweepFilter, apply func(context.Context, operations.TaskRef) error) (int, error) {
	f.Limit = r.cfg.BatchSize
	r.mu.Lock()
	f.AfterID = r.cursors[key]
	r.mu.Unlock()
	refs, err := r.svc.Sweep(ctx, f)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, ref := range refs {
		err := apply(ctx, ref)
		switch commonops.ErrorCode(err) {
		case "":
			n++
		case commonops.ECONFLICT, commonops.ENOTFOUND:
		default:
			errs = append(errs, fmt.Errorf("task %s: %w", ref.ID, err))
		}
	}
	// Page on past a full batch only when it left tasks behind (they would
	// fill the next batch again); when every task was handled they no longer
	// match, and starting over serves the oldest candidates first, including
	// old tasks that became due after the cursor had passed them.
	next := ""
	if len(refs) == f.Limit && n < len(refs) {
		next = refs[len(refs)-1].ID
	}
	r.mu.Lock()
	r.cursors[key] = next
	r.mu.Unlock()
	return n, errors.Join(errs...)
}
