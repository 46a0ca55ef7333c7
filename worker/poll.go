package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/commonops/commonops"
)

// claimTimeout bounds one claim call, which Stop does not cancel.
const claimTimeout = 10 * time.Second

// pollRetryDelay is how soon the poller tries again after a failed claim
// round, rather than waiting for the next PollInterval.
const pollRetryDelay = time.Second

// claimPlan decides what the poller may claim now: the kinds and how many,
// such that no type cap can be exceeded whatever the store returns.
func (p *Pool) claimPlan() ([]commonops.Kind, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := p.cfg.Concurrency - p.busy
	if !p.claiming || limit <= 0 {
		return nil, 0
	}
	remaining := func(tt string) (int, bool) {
		c, ok := p.cfg.TypeConcurrency[tt]
		if !ok || c <= 0 {
			return 0, false
		}
		return c - p.perType[tt], true
	}
	var kinds []commonops.Kind
	wildcard := false
	for _, k := range p.cfg.Registry.Kinds() {
		if k.TaskType == "*" {
			wildcard = true
			continue
		}
		if r, capped := remaining(k.TaskType); capped {
			if r <= 0 {
				continue
			}
			limit = min(limit, r)
		}
		kinds = append(kinds, k)
	}
	if wildcard {
		// A wildcard taskType may return any type: claim with it only while
		// every capped type has room, and no more than the tightest room.
		ok := true
		for tt := range p.cfg.TypeConcurrency {
			if r, capped := remaining(tt); capped {
				if r <= 0 {
					ok = false
					break
				}
				limit = min(limit, r)
			}
		}
		if ok {
			for _, k := range p.cfg.Registry.Kinds() {
				if k.TaskType == "*" {
					kinds = append(kinds, k)
				}
			}
		}
	}
	if len(kinds) == 0 {
		// An empty kind list would claim every task: claim nothing instead.
		return nil, 0
	}
	p.busy += limit // reserved until the claim returns
	return kinds, limit
}

// poll is the fallback poller: every PollInterval, and whenever a slot
// frees, it claims runnable tasks for the free slots.
func (p *Pool) poll(ctx context.Context) {
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	for {
		p.claimFree(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.wake:
		}
	}
}

func (p *Pool) claimFree(ctx context.Context) {
	for ctx.Err() == nil {
		kinds, limit := p.claimPlan()
		if limit == 0 {
			return
		}
		// Not cut short by Stop: a claim the database committed must reach
		// us, or its tasks wait for their leases to lapse.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
		tasks, err := p.svc.ClaimNext(cctx, p.cfg.WorkerID, kinds, limit)
		cancel()
		p.mu.Lock()
		p.busy -= limit
		if err == nil {
			p.backlog = len(tasks) == limit
		}
		p.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("poll for tasks failed", "err", err, "retryIn", pollRetryDelay.String())
				time.AfterFunc(pollRetryDelay, p.nudge)
			}
			return
		}
		for _, t := range tasks {
			proc, ok := p.cfg.Registry.Lookup(t.TaskType, t.EntityType)
			p.mu.Lock()
			p.busy++
			p.perType[t.TaskType]++
			p.mu.Unlock()
			if !ok { // registry changed under us; let the lease lapse is worse: fail fast
				p.launch(t, ProcessorFunc(func(context.Context, Job) error {
					return fmt.Errorf("no processor registered for (%s, %s)", t.TaskType, t.EntityType)
				}), "")
				continue
			}
			p.metrics.claims.WithLabelValues("poll").Inc()
			p.launch(t, proc, "")
		}
		if len(tasks) < limit {
			return
		}
	}
}
