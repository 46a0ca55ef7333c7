package worker

// SetBacklog sets what the poller's last claim told: that it filled every
// slot it asked for, so runnable tasks are likely waiting.
func (p *Pool) SetBacklog(b bool) {
	p.mu.Lock()
	p.backlog = b
	p.mu.Unlock()
}
