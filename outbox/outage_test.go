package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
)

// outage is a store whose outbox calls fail, as a database that is down
// does, until the relay has failed downFor times in a row; then the
// database "comes back" at once and recovered is when it did.
type outage struct {
	store.Store
	downFor int

	mu        sync.Mutex
	failed    int
	recovered time.Time
}

var errDatabaseDown = &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "database is unavailable", Err: errors.New("connection refused")}

func (o *outage) DeliverOutbox(ctx context.Context, limit int, publish func(context.Context, []outbox.Message) (int, error)) (int, error) {
	o.mu.Lock()
	if o.failed < o.downFor {
		o.failed++
		if o.failed == o.downFor {
			o.recovered = time.Now()
		}
		o.mu.Unlock()
		return 0, errDatabaseDown
	}
	o.mu.Unlock()
	return o.Store.DeliverOutbox(ctx, limit, publish)
}

func (o *outage) recoveredAt() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.recovered
}

// TestRelayResumesSoonAfterDatabaseOutage: a long database outage must not
// leave the relay asleep after the database is back. Twelve failures in a
// row grow the publisher backoff (10ms doubled) past 20s; a database
// failure's wait is capped at DatabaseBackoffMax, so the backlog goes out
// within about a second of recovery.
func TestRelayResumesSoonAfterDatabaseOutage(t *testing.T) {
	t.Parallel()
	s := &outage{Store: testdb.SQLite(t), downFor: 12}
	createTasks(t, s, 3)
	rec := newRecorder()
	relay := outbox.NewRelay(s, rec, outbox.Config{BackoffMin: 10 * time.Millisecond, BackoffMax: time.Minute, PollInterval: time.Hour})
	relay.Start(context.Background())
	defer relay.Stop()

	waitFor(t, "the relay to publish after the outage", 30*time.Second, func() bool { return rec.distinct() == 3 })
	if d := time.Since(s.recoveredAt()); d > 2*time.Second {
		t.Fatalf("published %s after the database came back, want within 2s", d.Round(time.Millisecond))
	}
}
