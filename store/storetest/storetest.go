// Package storetest is the conformance suite of store.Store: every driver
// runs the same tests (Run) against a real database, so the drivers agree on
// the contract written in store/store.go's doc comments.
//
// Where the interface is silent the suite fixes the behaviour both drivers
// keep: times read back at microsecond precision in UTC; list sorting puts
// null values last in either direction; DeleteTask keeps a deleted task's
// outbox rows; rows handed to a publish that did not report them sent count
// one more attempt; Sweep, DeliverOutbox and PruneOutbox refuse a limit
// below 1 with EINVALID.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
)

// Run runs the conformance suite. open returns a fresh, empty, migrated
// store for one test and releases it at the test's cleanup; the tests run in
// parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"RoundTrip", roundTripTests},
		{"CreateTask", createTests},
		{"CreateTasks", createBatchTests},
		{"GetTask", getTests},
		{"ListTasks", listTests},
		{"Keyset", keysetTests},
		{"TenantIsolation", isolationTests},
		{"UpdateTask", updateTests},
		{"UpdateTaskFrom", updateFromTests},
		{"DeleteTask", deleteTests},
		{"ClaimNext", claimTests},
		{"ClaimTask", claimTaskTests},
		{"Sweep", sweepTests},
		{"Logs", logTests},
		{"Events", eventTests},
		{"Actor", actorTests},
		{"APIKeys", apiKeyTests},
		{"EventsAfter", eventsAfterTests},
		{"TenantEvents", tenantEventsTests},
		{"Outbox", outboxTests},
		{"Leadership", leaderTests},
		{"Lifecycle", lifecycleTests},
		{"TenantUsage", usageTests},
		{"QueueStats", queueTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, open(t))
				})
			}
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// base is the suite's clock origin: microsecond-aligned, so times compare
// exactly after a round trip through either database.
var base = time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)

// at returns base plus n seconds.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

func ptr[T any](v T) *T { return &v }

const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

// newTask builds (without storing) a task of tenant created at now.
func newTask(t *testing.T, tenant string, now time.Time, in commonops.CreateInput) (*commonops.Task, commonops.Change) {
	t.Helper()
	if in.TaskType == "" {
		in.TaskType = "import"
	}
	if in.EntityType == "" {
		in.EntityType = "product"
	}
	tk, ch, err := commonops.NewTask(uuid.NewString(), tenant, "user-1", in, commonops.Limits{}, now)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	return tk, ch
}

// create stores a new task of tenant created at now and returns it.
func create(t *testing.T, s store.Store, tenant string, now time.Time, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	tk, ch := newTask(t, tenant, now, in)
	prior, err := s.CreateTask(context.Background(), tk, ch, nil)
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if prior != nil {
		t.Fatalf("CreateTask without a key: got prior %+v, want nil", prior)
	}
	return tk
}

// update applies fn through UpdateTask and fails the test on error.
func update(t *testing.T, s store.Store, tenant, id string, fn func(*commonops.Task) (commonops.Change, error)) *commonops.Task {
	t.Helper()
	tk, err := s.UpdateTask(context.Background(), tenant, id, fn)
	if err != nil {
		t.Fatalf("UpdateTask %s: %v", id, err)
	}
	return tk
}

func get(t *testing.T, s store.Store, tenant, id string) *commonops.Task {
	t.Helper()
	tk, err := s.GetTask(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("GetTask %s: %v", id, err)
	}
	return tk
}

// claim moves a stored pending task to processing for worker w at now.
func claim(t *testing.T, s store.Store, tk *commonops.Task, now time.Time) *commonops.Task {
	t.Helper()
	return update(t, s, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Claim("w", time.Minute, now) })
}

// complete claims a stored pending task and completes it at now.
func complete(t *testing.T, s store.Store, tk *commonops.Task, now time.Time) *commonops.Task {
	t.Helper()
	claim(t, s, tk, now)
	return update(t, s, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, now)
	})
}

// fail claims a stored pending task and fails it for good at now.
func fail(t *testing.T, s store.Store, tk *commonops.Task, now time.Time) *commonops.Task {
	t.Helper()
	claim(t, s, tk, now)
	return update(t, s, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.FailAttempt("boom", true, 0, now), nil
	})
}

func cancel(t *testing.T, s store.Store, tk *commonops.Task, now time.Time) *commonops.Task {
	t.Helper()
	return update(t, s, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(now) })
}

// wantCode fails unless err carries the domain code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := commonops.ErrorCode(err); got != code {
		t.Fatalf("%s: got error %v (code %q), want code %q", what, err, got, code)
	}
}

// canon returns t as a comparable value: times in UTC, JSON canonical.
func canon(t *testing.T, tk *commonops.Task) map[string]any {
	t.Helper()
	c := tk.Clone()
	for _, p := range []*time.Time{&c.CreatedAt, &c.UpdatedAt} {
		*p = p.UTC()
	}
	for _, p := range []**time.Time{&c.UploadExpiresAt, &c.LeaseExpiresAt, &c.AvailableAt, &c.ScheduledAt, &c.StartedAt, &c.CompletedAt, &c.LastProgressEventAt} {
		if *p != nil {
			*p = ptr((*p).UTC())
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("encode task: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode task: %v", err)
	}
	if c.LastProgressEventAt != nil {
		m["lastProgressEventAt"] = c.LastProgressEventAt.Format(time.RFC3339Nano)
	}
	if c.StoredBytes != 0 {
		m["storedBytes"] = c.StoredBytes
	}
	for name, p := range map[string]*string{"inputETag": c.InputETag, "outputObject": c.OutputObject, "outputETag": c.OutputETag} {
		if p != nil {
			m[name] = *p
		}
	}
	if cp, ok := m["checkpoint"]; ok && cp == nil {
		delete(m, "checkpoint")
	}
	return m
}

// equalTask fails unless got and want hold the same values.
func equalTask(t *testing.T, what string, got, want *commonops.Task) {
	t.Helper()
	g, w := canon(t, got), canon(t, want)
	if reflect.DeepEqual(g, w) {
		return
	}
	for k := range w {
		if !reflect.DeepEqual(g[k], w[k]) {
			t.Errorf("%s: field %s: got %v, want %v", what, k, g[k], w[k])
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: field %s: got %v, want it absent", what, k, g[k])
		}
	}
	t.FailNow()
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// events returns the event types of a task, oldest first.
func events(t *testing.T, s store.Store, tenant, id string) []string {
	t.Helper()
	evs, err := s.ListEvents(context.Background(), tenant, id, 0, 0)
	if err != nil {
		t.Fatalf("ListEvents %s: %v", id, err)
	}
	types := []string{}
	for _, e := range evs {
		types = append(types, e.EventType)
	}
	return types
}

// backlog returns the number of unsent outbox rows.
func backlog(t *testing.T, s store.Store) int {
	t.Helper()
	n, _, err := s.OutboxStats(context.Background())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	return n
}

// drain publishes every unsent outbox row and returns them in order.
func drain(t *testing.T, s store.Store) []outbox.Message {
	t.Helper()
	var all []outbox.Message
	for {
		n, err := s.DeliverOutbox(context.Background(), 100, func(_ context.Context, msgs []outbox.Message) (int, error) {
			all = append(all, msgs...)
			return len(msgs), nil
		})
		if err != nil {
			t.Fatalf("DeliverOutbox: %v", err)
		}
		if n == 0 {
			return all
		}
	}
}

func topics(msgs []outbox.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.Topic)
	}
	return out
}

var errBoom = errors.New("boom")
