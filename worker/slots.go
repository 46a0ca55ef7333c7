package worker

// reserve takes a slot for an event's task of taskType, if the pool is
// claiming, has no backlog for the poller, and both the pool and the type
// have room. A caller that got the slot holds p.handling until it launched
// the task or released the slot.
func (p *Pool) reserve(taskType string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.claiming || p.backlog || p.busy >= p.cfg.Concurrency {
		return false
	}
	if c, ok := p.cfg.TypeConcurrency[taskType]; ok && c > 0 && p.perType[taskType] >= c {
		return false
	}
	p.busy++
	p.perType[taskType]++
	p.handling.Add(1)
	return true
}

func (p *Pool) release(taskType string) {
	p.mu.Lock()
	p.busy--
	p.perType[taskType]--
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
