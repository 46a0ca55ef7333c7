package worker

import "time"

// LateEvent is how long after its task's change a created or retried event
// may arrive and still claim the task itself. A later one shows that the
// events lag behind the tasks (a backlog in the broker, a slow relay): the
// tasks created meanwhile would wait for their events, so the pool hands
// the claiming to the poller until the events catch up. It allows for
// clock skew between the replicas.
const LateEvent = 250 * time.Millisecond

// reserve takes a slot for an event's task of taskType, if the pool is
// claiming, has no backlog for the poller's fair turns, and both the pool
// and the type have room. A caller that got the slot holds p.handling until
// it launched the task or released the slot. When the only slots left are
// held by the poll round in flight, reserve returns that round's channel:
// the caller may wait for it and try again (the round gives back what it
// did not use), rather than hand its task to a poll round of its own.
func (p *Pool) reserve(taskType string) (ok bool, round <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.claiming || p.backlog {
		return false, nil
	}
	if c, ok := p.cfg.TypeConcurrency[taskType]; ok && c > 0 && p.perType[taskType] >= c {
		p.backlog = true
		return false, nil
	}
	if p.busy >= p.cfg.Concurrency {
		if p.round != nil {
			return false, p.round
		}
		p.backlog = true
		return false, nil
	}
	p.busy++
	p.perType[taskType]++
	p.handling.Add(1)
	return true, nil
}

// release gives back a slot; with a backlog, it asks the poller to fill it.
func (p *Pool) release(taskType string) {
	p.mu.Lock()
	p.busy--
	p.perType[taskType]--
	backlog := p.backlog
	p.mu.Unlock()
	if backlog {
		p.nudge()
	}
}

// missed records that an event could not start its task, and asks the
// poller for a round.
func (p *Pool) missed() {
	p.mu.Lock()
	p.backlog = true
	p.mu.Unlock()
	p.nudge()
}

// nudge asks the poller for a claim round now, without blocking.
func (p *Pool) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}
