package store

import "sync"

// Signals hands each listener a channel of its own that receives
// (without blocking the sender) after commits that wrote task events.
// The drivers' CommitSignal is made of it (OutboxSignal's one channel
// belongs to the relay: a second reader of it would take wake-ups the relay
// needs). The zero value is ready to use.
type Signals struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Subscribe registers a listener; stop unregisters it.
func (c *Signals) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[chan struct{}]struct{}{}
	}
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// Signal wakes every listener without blocking.
func (c *Signals) Signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
