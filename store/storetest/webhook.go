package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

const hookURL = "https://hooks.example.com/done"

// claimDue claims every delivery due at now, with a lease of a minute.
func claimDue(t *testing.T, s store.Store, now time.Time) []*commonops.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(context.Background(), now, time.Minute, 100)
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	return ds
}

func listDeliveries(t *testing.T, s store.Store, tenant, id string) []*commonops.Delivery {
	t.Helper()
	ds, err := s.ListDeliveries(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("ListDeliveries: %v", err)
	}
	return ds
}

func subscribe(t *testing.T, s store.Store, id, tenant, taskType, url string, now time.Time) {
	t.Helper()
	if err := s.CreateSubscription(context.Background(), &commonops.Subscription{ID: id, TenantID: tenant, TaskType: taskType, URL: url, CreatedAt: now}); err != nil {
		t.Fatalf("CreateSubscription %s: %v", id, err)
	}
}

func deliveryURLs(ds []*commonops.Delivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.URL)
	}
	slices.Sort(out)
	return out
}

var webhookTests = []test{
	{"TerminalStatusWritesDeliveryWithTask", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		if got := get(t, s, tenantA, tk.ID).CallbackURL; got == nil || *got != hookURL {
			t.Fatalf("callbackUrl read back: got %v, want %s", got, hookURL)
		}
		claim(t, s, tk, at(1))
		if ds := claimDue(t, s, at(100)); len(ds) != 0 {
			t.Fatalf("deliveries before a terminal status: got %d, want 0", len(ds))
		}
		done := update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, at(2))
		})
		if ds := claimDue(t, s, at(1)); len(ds) != 0 {
			t.Fatalf("deliveries due before the change's time: got %d, want 0", len(ds))
		}
		ds := claimDue(t, s, at(2))
		if len(ds) != 1 {
			t.Fatalf("deliveries due: got %d, want 1", len(ds))
		}
		d := ds[0]
		if d.TaskID != tk.ID || d.TenantID != tenantA || d.URL != hookURL || d.EventType != commonops.TopicCompleted ||
			d.Status != commonops.DeliveryPending || d.SubscriptionID != nil || !d.CreatedAt.Equal(at(2)) {
			t.Fatalf("delivery: got %+v, want a pending completed delivery of %s to %s created at %s", d, tk.ID, hookURL, at(2))
		}
		if d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(at(2).Add(time.Minute)) {
			t.Fatalf("claimed nextAttemptAt: got %v, want the lease's end %s", d.NextAttemptAt, at(2).Add(time.Minute))
		}
		var payload commonops.Task
		if err := json.Unmarshal(d.Payload, &payload); err != nil {
			t.Fatalf("payload: %v", err)
		}
		if payload.ID != tk.ID || payload.Status != commonops.StatusCompleted || payload.Version != done.Version {
			t.Fatalf("payload: got task %s %s v%d, want %s completed v%d", payload.ID, payload.Status, payload.Version, tk.ID, done.Version)
		}
		if again := claimDue(t, s, at(3)); len(again) != 0 {
			t.Fatalf("claim during the lease: got %d, want 0", len(again))
		}
		if again := claimDue(t, s, at(2).Add(time.Minute)); len(again) != 1 {
			t.Fatalf("claim after the lease: got %d, want 1", len(again))
		}
	}},
	{"EveryTerminalStatusButNotRetries", func(t *testing.T, s store.Store) {
		a := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		b := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL), MaxRetries: ptr(1)})
		c := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		none := create(t, s, tenantA, at(0), commonops.CreateInput{})
		cancel(t, s, a, at(1))
		claim(t, s, b, at(1))
		update(t, s, tenantA, b.ID, func(x *commonops.Task) (commonops.Change, error) { return x.FailAttempt("again", false, 0, at(1)), nil })
		if ds := listDeliveries(t, s, tenantA, b.ID); len(ds) != 0 {
			t.Fatalf("deliveries after a retried failure: got %d, want 0", len(ds))
		}
		fail(t, s, b, at(2))
		fail(t, s, c, at(2))
		complete(t, s, none, at(2))
		for _, tc := range []struct {
			id, topic string
		}{{a.ID, commonops.TopicCancelled}, {b.ID, commonops.TopicFailed}, {c.ID, commonops.TopicFailed}} {
			ds := listDeliveries(t, s, tenantA, tc.id)
			if len(ds) != 1 || ds[0].EventType != tc.topic {
				t.Fatalf("deliveries of %s: got %+v, want one %s", tc.id, ds, tc.topic)
			}
		}
		if ds := listDeliveries(t, s, tenantA, none.ID); len(ds) != 0 {
			t.Fatalf("deliveries of a task without callbackUrl: got %d, want 0", len(ds))
		}
	}},
	{"RecordAttempts", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		cancel(t, s, tk, at(1))
		d := claimDue(t, s, at(1))[0]
		next := at(10)
		d.Record(commonops.DeliveryAttempt{Attempt: 1, At: at(2), StatusCode: ptr(500), Error: ptr("the endpoint answered 500"), DurationMs: 12}, &next)
		if err := s.RecordDeliveryAttempt(ctx, d); err != nil {
			t.Fatalf("RecordDeliveryAttempt 1: %v", err)
		}
		if ds := claimDue(t, s, at(9)); len(ds) != 0 {
			t.Fatalf("claim before the next attempt: got %d, want 0", len(ds))
		}
		d2 := claimDue(t, s, at(10))
		if len(d2) != 1 || d2[0].AttemptCount != 1 {
			t.Fatalf("claim at the next attempt: got %+v, want the delivery with 1 attempt", d2)
		}
		d.Record(commonops.DeliveryAttempt{Attempt: 2, At: at(11), OK: true, StatusCode: ptr(204), DurationMs: 3}, nil)
		if err := s.RecordDeliveryAttempt(ctx, d); err != nil {
			t.Fatalf("RecordDeliveryAttempt 2: %v", err)
		}
		if ds := claimDue(t, s, at(1000)); len(ds) != 0 {
			t.Fatalf("claim of a delivered delivery: got %d, want 0", len(ds))
		}
		got := listDeliveries(t, s, tenantA, tk.ID)
		if len(got) != 1 {
			t.Fatalf("ListDeliveries: got %d, want 1", len(got))
		}
		g := got[0]
		if g.Status != commonops.DeliveryDelivered || g.AttemptCount != 2 || g.NextAttemptAt != nil || g.DeliveredAt == nil || !g.DeliveredAt.Equal(at(11)) || g.Payload != nil {
			t.Fatalf("delivered delivery: got %+v, want delivered at %s after 2 attempts, no payload", g, at(11))
		}
		want := []commonops.DeliveryAttempt{
			{Attempt: 1, At: at(2), StatusCode: ptr(500), Error: ptr("the endpoint answered 500"), DurationMs: 12},
			{Attempt: 2, At: at(11), OK: true, StatusCode: ptr(204), DurationMs: 3},
		}
		gb, _ := json.Marshal(g.Attempts)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Fatalf("attempts: got %s, want %s", gb, wb)
		}
		if other := listDeliveries(t, s, tenantB, tk.ID); len(other) != 0 {
			t.Fatalf("another tenant's deliveries: got %d, want 0", len(other))
		}
		d.ID = 1 << 40
		wantCode(t, "RecordDeliveryAttempt of an unknown delivery", s.RecordDeliveryAttempt(ctx, d), commonops.ENOTFOUND)
	}},
	{"FailedForGood", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		cancel(t, s, tk, at(1))
		d := claimDue(t, s, at(1))[0]
		d.Record(commonops.DeliveryAttempt{Attempt: 1, At: at(2), Error: ptr("timeout")}, nil)
		if err := s.RecordDeliveryAttempt(context.Background(), d); err != nil {
			t.Fatalf("RecordDeliveryAttempt: %v", err)
		}
		g := listDeliveries(t, s, tenantA, tk.ID)[0]
		if g.Status != commonops.DeliveryFailed || g.NextAttemptAt != nil || len(g.Attempts) != 1 || g.Attempts[0].StatusCode != nil {
			t.Fatalf("delivery: got %+v, want failed, no next attempt, one attempt without status code", g)
		}
		if ds := claimDue(t, s, at(100000)); len(ds) != 0 {
			t.Fatalf("claim of a failed delivery: got %d, want 0", len(ds))
		}
	}},
	{"SubscriptionsFanOut", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		subscribe(t, s, "sub-import", tenantA, "import", "https://a.example.com/import", at(0))
		subscribe(t, s, "sub-any", tenantA, "*", "https://a.example.com/any", at(1))
		subscribe(t, s, "sub-export", tenantA, "export", "https://a.example.com/export", at(2))
		subscribe(t, s, "sub-b", tenantB, "*", "https://b.example.com/any", at(3))
		tk := create(t, s, tenantA, at(5), commonops.CreateInput{TaskType: "import", CallbackURL: ptr(hookURL)})
		complete(t, s, tk, at(6))
		got := listDeliveries(t, s, tenantA, tk.ID)
		want := []string{"https://a.example.com/any", "https://a.example.com/import", hookURL}
		if g := deliveryURLs(got); !slices.Equal(g, want) {
			t.Fatalf("delivery URLs: got %v, want %v", g, want)
		}
		for _, d := range got {
			wantSub := map[string]string{"https://a.example.com/any": "sub-any", "https://a.example.com/import": "sub-import"}[d.URL]
			if (d.SubscriptionID == nil) != (wantSub == "") || d.SubscriptionID != nil && *d.SubscriptionID != wantSub {
				t.Fatalf("subscriptionId of %s: got %v, want %q", d.URL, d.SubscriptionID, wantSub)
			}
		}
		subs, err := s.ListSubscriptions(ctx, tenantA)
		if err != nil {
			t.Fatalf("ListSubscriptions: %v", err)
		}
		var ids []string
		for _, sub := range subs {
			ids = append(ids, sub.ID)
		}
		if !slices.Equal(ids, []string{"sub-import", "sub-any", "sub-export"}) || !subs[0].CreatedAt.Equal(at(0)) || subs[0].URL != "https://a.example.com/import" || subs[0].TaskType != "import" {
			t.Fatalf("subscriptions: got %v (first %+v), want sub-import, sub-any, sub-export oldest first", ids, subs[0])
		}
		wantCode(t, "CreateSubscription of a taken id", s.CreateSubscription(ctx, &commonops.Subscription{ID: "sub-any", TenantID: tenantA, TaskType: "*", URL: hookURL, CreatedAt: at(9)}), commonops.ECONFLICT)
		wantCode(t, "DeleteSubscription of another tenant's", s.DeleteSubscription(ctx, tenantB, "sub-any"), commonops.ENOTFOUND)
		if err := s.DeleteSubscription(ctx, tenantA, "sub-any"); err != nil {
			t.Fatalf("DeleteSubscription: %v", err)
		}
		wantCode(t, "DeleteSubscription twice", s.DeleteSubscription(ctx, tenantA, "sub-any"), commonops.ENOTFOUND)
		next := create(t, s, tenantA, at(10), commonops.CreateInput{TaskType: "import"})
		cancel(t, s, next, at(11))
		if g := deliveryURLs(listDeliveries(t, s, tenantA, next.ID)); !slices.Equal(g, []string{"https://a.example.com/import"}) {
			t.Fatalf("delivery URLs after the delete: got %v, want only the import subscription's", g)
		}
	}},
	{"DeleteTaskKeepsPendingDeliveries", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		sent := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		pending := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		cancel(t, s, sent, at(1))
		d := listDeliveries(t, s, tenantA, sent.ID)[0]
		d.Record(commonops.DeliveryAttempt{Attempt: 1, At: at(2), OK: true, StatusCode: ptr(200)}, nil)
		if err := s.RecordDeliveryAttempt(ctx, d); err != nil {
			t.Fatalf("RecordDeliveryAttempt: %v", err)
		}
		cancel(t, s, pending, at(3))
		for _, tk := range []*commonops.Task{sent, pending} {
			if _, err := s.DeleteTask(ctx, tenantA, tk.ID); err != nil {
				t.Fatalf("DeleteTask: %v", err)
			}
		}
		if ds := listDeliveries(t, s, tenantA, sent.ID); len(ds) != 0 {
			t.Fatalf("deliveries of a deleted task, delivered: got %d, want 0", len(ds))
		}
		ds := claimDue(t, s, at(5))
		if len(ds) != 1 || ds[0].TaskID != pending.ID {
			t.Fatalf("due after the deletes: got %+v, want the pending delivery of %s", ds, pending.ID)
		}
	}},
	{"DeliveryOfDeletedTaskPrunedWhenFinished", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tests := []struct {
			name string
			last commonops.DeliveryAttempt // recorded with no next attempt
		}{
			{"delivered", commonops.DeliveryAttempt{Attempt: 2, At: at(20), OK: true, StatusCode: ptr(204)}},
			{"failed for good", commonops.DeliveryAttempt{Attempt: 2, At: at(20), StatusCode: ptr(500), Error: ptr("the endpoint answered 500")}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				kept := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
				gone := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
				cancel(t, s, kept, at(1))
				cancel(t, s, gone, at(1))
				if _, err := s.DeleteTask(ctx, tenantA, gone.ID); err != nil {
					t.Fatalf("DeleteTask: %v", err)
				}
				ds := claimDue(t, s, at(5))
				if len(ds) != 2 {
					t.Fatalf("due: got %d deliveries, want 2 (the deleted task's is still sent)", len(ds))
				}
				// A failed attempt with a retry to come keeps it.
				for _, d := range ds {
					retry := at(10)
					d.Record(commonops.DeliveryAttempt{Attempt: 1, At: at(5), StatusCode: ptr(503), Error: ptr("the endpoint answered 503")}, &retry)
					if err := s.RecordDeliveryAttempt(ctx, d); err != nil {
						t.Fatalf("RecordDeliveryAttempt 1: %v", err)
					}
				}
				if got := listDeliveries(t, s, tenantA, gone.ID); len(got) != 1 || got[0].Status != commonops.DeliveryPending || len(got[0].Attempts) != 1 {
					t.Fatalf("deleted task's delivery after a failed attempt: got %+v, want it pending with 1 attempt", got)
				}
				for _, d := range ds {
					d.Record(tc.last, nil)
					if err := s.RecordDeliveryAttempt(ctx, d); err != nil {
						t.Fatalf("RecordDeliveryAttempt 2: %v", err)
					}
				}
				if got := listDeliveries(t, s, tenantA, gone.ID); len(got) != 0 {
					t.Fatalf("deleted task's delivery once %s: got %+v, want it pruned", tc.name, got[0])
				}
				got := listDeliveries(t, s, tenantA, kept.ID)
				if len(got) != 1 || got[0].Status == commonops.DeliveryPending || len(got[0].Attempts) != 2 {
					t.Fatalf("live task's delivery once %s: got %+v, want it kept, finished, with 2 attempts", tc.name, got)
				}
				if ds := claimDue(t, s, at(100)); len(ds) != 0 {
					t.Fatalf("due after both finished: got %d, want 0", len(ds))
				}
			})
		}
	}},
	{"DeliveryBacklog", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		backlog := func(what string, wantN int64, wantOldest time.Time) {
			t.Helper()
			n, oldest, err := s.DeliveryBacklog(ctx)
			if err != nil || n != wantN || !oldest.Equal(wantOldest) {
				t.Fatalf("DeliveryBacklog %s: got %d, %s, %v, want %d, %s", what, n, oldest, err, wantN, wantOldest)
			}
		}
		backlog("of none", 0, time.Time{})
		first := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		other := create(t, s, tenantB, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
		cancel(t, s, first, at(1))
		cancel(t, s, other, at(2))
		backlog("of two tenants' pending deliveries", 2, at(1))
		ds := claimDue(t, s, at(3))
		if len(ds) != 2 {
			t.Fatalf("due: got %d, want 2", len(ds))
		}
		backlog("while claimed (still pending)", 2, at(1))
		for _, d := range ds {
			if d.TaskID != first.ID {
				continue
			}
			d.Record(commonops.DeliveryAttempt{Attempt: 1, At: at(4), OK: true, StatusCode: ptr(200)}, nil)
			if err := s.RecordDeliveryAttempt(ctx, d); err != nil {
				t.Fatalf("RecordDeliveryAttempt: %v", err)
			}
		}
		backlog("after the first was delivered", 1, at(2))
	}},
	{"ClaimLimit", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		for i := range 3 {
			tk := create(t, s, tenantA, at(i), commonops.CreateInput{CallbackURL: ptr(hookURL)})
			cancel(t, s, tk, at(i))
		}
		ds, err := s.ClaimDeliveries(ctx, at(10), time.Minute, 2)
		if err != nil || len(ds) != 2 {
			t.Fatalf("ClaimDeliveries limit 2: got %d, %v; want 2", len(ds), err)
		}
		rest, err := s.ClaimDeliveries(ctx, at(10), time.Minute, 2)
		if err != nil || len(rest) != 1 || rest[0].ID == ds[0].ID || rest[0].ID == ds[1].ID {
			t.Fatalf("second claim: got %+v, %v; want the third delivery", rest, err)
		}
		_, err = s.ClaimDeliveries(ctx, at(10), time.Minute, 0)
		wantCode(t, "ClaimDeliveries limit 0", err, commonops.EINVALID)
	}},
}

// OrphanDeliveriesPruned checks the migration that deletes the finished
// deliveries of tasks deleted before RecordDeliveryAttempt pruned them.
// orphan deletes a task's row alone (as if an older DeleteTask had left its
// deliveries); remigrate forgets the migration and migrates again.
func OrphanDeliveriesPruned(t *testing.T, s store.Store, orphan func(ctx context.Context, taskID string) error, remigrate func(ctx context.Context) error) {
	t.Helper()
	ctx := context.Background()
	finished := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
	pending := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
	kept := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
	for _, tk := range []*commonops.Task{finished, pending, kept} {
		cancel(t, s, tk, at(1))
	}
	for _, d := range claimDue(t, s, at(2)) {
		if d.TaskID == pending.ID {
			continue
		}
		d.Record(commonops.DeliveryAttempt{Attempt: 1, At: at(3), OK: true, StatusCode: ptr(200)}, nil)
		if err := s.RecordDeliveryAttempt(ctx, d); err != nil {
			t.Fatalf("RecordDeliveryAttempt: %v", err)
		}
	}
	for _, tk := range []*commonops.Task{finished, pending} {
		if err := orphan(ctx, tk.ID); err != nil {
			t.Fatalf("delete the row of task %s: %v", tk.ID, err)
		}
	}
	if got := listDeliveries(t, s, tenantA, finished.ID); len(got) != 1 {
		t.Fatalf("before the migration: got %d deliveries of the deleted task, want the 1 left behind", len(got))
	}
	if err := remigrate(ctx); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if got := listDeliveries(t, s, tenantA, finished.ID); len(got) != 0 {
		t.Errorf("deleted task's delivered delivery after the migration: got %d, want 0", len(got))
	}
	if got := listDeliveries(t, s, tenantA, pending.ID); len(got) != 1 || got[0].Status != commonops.DeliveryPending {
		t.Errorf("deleted task's pending delivery after the migration: got %+v, want it kept (still to be sent)", got)
	}
	if got := listDeliveries(t, s, tenantA, kept.ID); len(got) != 1 || len(got[0].Attempts) != 1 {
		t.Errorf("live task's delivery after the migration: got %+v, want it kept with its attempt", got)
	}
}
