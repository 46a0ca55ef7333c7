package worker

import (
	"context"
	"time"
)

// heartbeatLoop renews the lease every HeartbeatInterval; a conflict means
// the task was cancelled or the lease lost, and cancels the processor.
func (p *Pool) heartbeatLoop(ctx context.Context, stop <-chan struct{}, j *job) {
	tick := time.NewTicker(p.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t, err := p.svc.Heartbeat(p.base, j.task.TenantID, j.task.ID, j.task.Attempt)
		switch {
		case err == nil:
			j.saved(t)
		case j.conflict(err):
			return
		case p.base.Err() == nil:
			j.log.Warn("heartbeat failed", "err", err)
		}
	}
}
