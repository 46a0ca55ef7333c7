package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

func tryLead(t *testing.T, s store.Store, name, holder string, ttl time.Duration) bool {
	t.Helper()
	ok, err := s.TryLead(context.Background(), name, holder, ttl)
	if err != nil {
		t.Fatalf("TryLead %s by %s: %v", name, holder, err)
	}
	return ok
}

var leaderTests = []test{
	{"OneHolderAtATime", func(t *testing.T, s store.Store) {
		if !tryLead(t, s, "maintenance", "a", time.Minute) {
			t.Fatal("a's first TryLead: got false, want true")
		}
		if tryLead(t, s, "maintenance", "b", time.Minute) {
			t.Fatal("b's TryLead while a leads: got true, want false")
		}
		if !tryLead(t, s, "maintenance", "a", time.Minute) {
			t.Fatal("a's renewal: got false, want true")
		}
		if !tryLead(t, s, "other", "b", time.Minute) {
			t.Fatal("b's TryLead of another name: got false, want true")
		}
	}},
	{"TakeoverAfterTTL", func(t *testing.T, s store.Store) {
		const ttl = 200 * time.Millisecond
		if !tryLead(t, s, "m", "a", ttl) {
			t.Fatal("a's TryLead: got false, want true")
		}
		time.Sleep(2 * ttl) // let a's lease lapse without renewal
		if !tryLead(t, s, "m", "b", time.Minute) {
			t.Fatal("b's TryLead after a's ttl: got false, want true")
		}
		if tryLead(t, s, "m", "a", time.Minute) {
			t.Fatal("a's TryLead after b took over: got true, want false")
		}
	}},
	{"RenewExtends", func(t *testing.T, s store.Store) {
		const ttl = 300 * time.Millisecond
		tryLead(t, s, "m", "a", ttl)
		if !tryLead(t, s, "m", "a", time.Minute) {
			t.Fatal("a's renewal: got false, want true")
		}
		time.Sleep(2 * ttl) // past the first ttl, within the renewed one
		if tryLead(t, s, "m", "b", time.Minute) {
			t.Fatal("b's TryLead within a's renewed ttl: got true, want false")
		}
	}},
	{"Resign", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tryLead(t, s, "m", "a", time.Minute)
		if err := s.Resign(ctx, "m", "b"); err != nil {
			t.Fatalf("Resign by a non-holder: %v", err)
		}
		if tryLead(t, s, "m", "b", time.Minute) {
			t.Fatal("b's TryLead after b's own resign: got true, want false (a still leads)")
		}
		if err := s.Resign(ctx, "m", "a"); err != nil {
			t.Fatalf("Resign: %v", err)
		}
		if !tryLead(t, s, "m", "b", time.Minute) {
			t.Fatal("b's TryLead after a resigned: got false, want true")
		}
	}},
}

var lifecycleTests = []test{
	{"UploadClaimProgressComplete", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("in.csv")})
		update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmUpload(at(1)) })
		got := claimNext(t, s, store.ClaimParams{Limit: 1, Now: at(2)})
		if len(got) != 1 {
			t.Fatalf("claim: got %d, want 1", len(got))
		}
		update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Attempt: ptr(1), TotalItems: ptr(int64(4)), ProcessedItems: ptr(int64(2)), Checkpoint: []byte(`{"offset": 2}`)}, time.Minute, 0, at(3))
		})
		mid := get(t, s, tenantA, tk.ID)
		if mid.Progress != 50 || string(mid.Checkpoint) == "" || !jsonEqual(t, mid.Checkpoint, []byte(`{"offset":2}`)) {
			t.Fatalf("mid-way: got progress %v checkpoint %s, want 50 and offset 2", mid.Progress, mid.Checkpoint)
		}
		done := update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Attempt: ptr(1), ProcessedItems: ptr(int64(4)), Status: ptr(commonops.StatusCompleted), OutputFileName: ptr("out.csv")}, time.Minute, 0, at(4))
		})
		if done.Status != commonops.StatusCompleted || done.LeaseOwner != nil || done.CompletedAt == nil || *done.OutputFileName != "out.csv" {
			t.Fatalf("completed: got %+v", done)
		}
		equalTask(t, "GetTask after completion", get(t, s, tenantA, tk.ID), done)
		wantEvents := []string{commonops.EventCreated, commonops.EventUploadConfirmed, commonops.EventStarted, commonops.EventProgress, commonops.EventCompleted}
		if got := events(t, s, tenantA, tk.ID); !slices.Equal(got, wantEvents) {
			t.Fatalf("events: got %v, want %v", got, wantEvents)
		}
		wantTopics := []string{commonops.TopicCreated, commonops.TopicProgress, commonops.TopicCompleted}
		if got := topics(drain(t, s)); !slices.Equal(got, wantTopics) {
			t.Fatalf("outbox topics: got %v, want %v", got, wantTopics)
		}
		_, err := s.UpdateTask(context.Background(), tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Attempt: ptr(1)}, time.Minute, 0, at(5))
		})
		wantCode(t, "progress on a completed task", err, commonops.ECONFLICT)
	}},
	{"LeaseExpiryRetriesThenFails", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{MaxRetries: ptr(1)})
		claim(t, s, tk, at(1)) // lease until at(61)
		refs, err := s.Sweep(context.Background(), store.SweepFilter{Statuses: []commonops.Status{commonops.StatusProcessing}, LeaseExpiredBefore: ptr(at(61)), Limit: 10})
		if err != nil || len(refs) != 1 {
			t.Fatalf("sweep lapsed leases: got %v, err %v; want the task", refs, err)
		}
		back := update(t, s, refs[0].TenantID, refs[0].ID, func(x *commonops.Task) (commonops.Change, error) { return x.ExpireLease(0, at(61)) })
		if back.Status != commonops.StatusPending || back.RetryCount != 1 {
			t.Fatalf("after first expiry: got %s retry %d, want pending 1", back.Status, back.RetryCount)
		}
		claim(t, s, tk, at(62))
		final := update(t, s, "", tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ExpireLease(0, at(200)) })
		if final.Status != commonops.StatusFailed || final.Attempt != 2 {
			t.Fatalf("after second expiry: got %s attempt %d, want failed 2", final.Status, final.Attempt)
		}
		want := []string{commonops.EventCreated, commonops.EventStarted, commonops.EventLeaseExpired, commonops.EventStarted, commonops.EventFailed}
		if got := events(t, s, tenantA, tk.ID); !slices.Equal(got, want) {
			t.Fatalf("events: got %v, want %v", got, want)
		}
	}},
}
