package operations

import (
	"context"

	"github.com/commonops/commonops"
)

// ListEventsAfter returns the events of every task and tenant with an id
// above afterID, oldest first, up to limit, and the largest event id
// stored. It is the source of the process's event feed (package feed),
// which hands each event only to the streams of its tenant: never answer a
// client with it directly.
func (s *Service) ListEventsAfter(ctx context.Context, afterID int64, limit int) ([]commonops.Event, int64, error) {
	return s.Store.ListEventsAfter(ctx, afterID, limit)
}

// committer is a store that wakes each of its readers after a commit that
// wrote events (both drivers).
type committer interface {
	CommitSignal() (signal <-chan struct{}, stop func())
}

// CommitSignal gives the event feed its own wake-up after each commit that
// wrote events, where the store can signal (both drivers can); otherwise a
// channel that never fires, and the feed relies on its fallback tick.
func (s *Service) CommitSignal() (<-chan struct{}, func()) {
	if c, ok := s.Store.(committer); ok {
		return c.CommitSignal()
	}
	return nil, func() {}
}
