package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// queueStats calls QueueStats and fails the test on error.
func queueStats(t *testing.T, s store.Store, q store.QueueQuery) store.QueueStats {
	t.Helper()
	st, err := s.QueueStats(context.Background(), q)
	if err != nil {
		t.Fatalf("QueueStats %+v: %v", q, err)
	}
	return st
}

// retryLater claims a stored pending task at now and fails its attempt, to
// be retried after delay.
func retryLater(t *testing.T, s store.Store, tk *commonops.Task, now time.Time, delay time.Duration) *commonops.Task {
	t.Helper()
	claim(t, s, tk, now)
	return update(t, s, tk.TenantID, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.FailAttempt("flaky", false, delay, now), nil
	})
}

// queueFixture stores, for tenant A: pending imports (one claimable since
// at(0), one since the end of its backoff at(-270), one still backing off,
// one awaiting its upload since at(-600), the oldest, which is not
// claimable and so not the oldest waiting), two processing exports, and imports that
// completed at(100) and at(3599) and failed at(1000), an export completed
// before the window and one cancelled in it; for tenant B one pending
// import created at(-500).
func queueFixture(t *testing.T, s store.Store) {
	create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "import"})
	create(t, s, tenantA, at(10), commonops.CreateInput{TaskType: "import"})
	create(t, s, tenantA, at(-600), commonops.CreateInput{TaskType: "import", FileName: ptr("a.csv")})
	retryLater(t, s, create(t, s, tenantA, at(-300), commonops.CreateInput{TaskType: "import"}), at(-280), 10*time.Second)
	retryLater(t, s, create(t, s, tenantA, at(-400), commonops.CreateInput{TaskType: "import"}), at(5), time.Hour*2)
	claim(t, s, create(t, s, tenantA, at(15), commonops.CreateInput{TaskType: "export"}), at(20))
	claim(t, s, create(t, s, tenantA, at(25), commonops.CreateInput{TaskType: "export"}), at(30))
	complete(t, s, create(t, s, tenantA, at(50), commonops.CreateInput{TaskType: "import"}), at(100))
	fail(t, s, create(t, s, tenantA, at(60), commonops.CreateInput{TaskType: "import"}), at(1000))
	complete(t, s, create(t, s, tenantA, at(70), commonops.CreateInput{TaskType: "import"}), at(3599))
	complete(t, s, create(t, s, tenantA, at(-60), commonops.CreateInput{TaskType: "export"}), at(-10))
	cancel(t, s, create(t, s, tenantA, at(80), commonops.CreateInput{TaskType: "export"}), at(90))
	create(t, s, tenantB, at(-500), commonops.CreateInput{TaskType: "import"})
}

var queueTests = []test{
	{"CountsAgesAndHistoryByType", func(t *testing.T, s store.Store) {
		queueFixture(t, s)
		st := queueStats(t, s, store.QueueQuery{TenantID: tenantA, Now: at(3600), Since: at(0), Bucket: 15 * time.Minute})
		want := []store.Queue{
			{TaskType: "export", Pending: 0, Running: 2, Completed: []int{0, 0, 0, 0}, Failed: []int{0, 0, 0, 0}},
			{TaskType: "import", Pending: 5, Running: 0, OldestWaiting: at(-270), Completed: []int{1, 0, 0, 1}, Failed: []int{0, 1, 0, 0}},
		}
		if !reflect.DeepEqual(st.Queues, want) {
			t.Fatalf("queues of tenant A:\ngot  %+v\nwant %+v", st.Queues, want)
		}
		if len(st.Leases) != 0 {
			t.Fatalf("leases without a limit: got %+v, want none", st.Leases)
		}
	}},
	{"EveryTenant", func(t *testing.T, s store.Store) {
		queueFixture(t, s)
		st := queueStats(t, s, store.QueueQuery{Now: at(3600)})
		want := []store.Queue{
			{TaskType: "export", Running: 2, Completed: []int{}, Failed: []int{}},
			{TaskType: "import", Pending: 6, OldestWaiting: at(-500), Completed: []int{}, Failed: []int{}},
		}
		if !reflect.DeepEqual(st.Queues, want) {
			t.Fatalf("queues of every tenant without a window:\ngot  %+v\nwant %+v", st.Queues, want)
		}
		if st := queueStats(t, s, store.QueueQuery{TenantID: tenantB, Now: at(3600), Since: at(0), Bucket: time.Hour}); len(st.Queues) != 1 || st.Queues[0].Pending != 1 || st.Queues[0].TaskType != "import" {
			t.Fatalf("queues of tenant B: got %+v, want one pending import", st.Queues)
		}
	}},
	{"EndedOnlyInWindowStillListed", func(t *testing.T, s store.Store) {
		complete(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "report"}), at(10))
		st := queueStats(t, s, store.QueueQuery{TenantID: tenantA, Now: at(100), Since: at(0), Bucket: 40 * time.Second})
		want := []store.Queue{{TaskType: "report", Completed: []int{1, 0, 0}, Failed: []int{0, 0, 0}}}
		if !reflect.DeepEqual(st.Queues, want) {
			t.Fatalf("queues: got %+v, want %+v (three buckets, the last one shorter)", st.Queues, want)
		}
		if st := queueStats(t, s, store.QueueQuery{TenantID: tenantB, Now: at(100), Since: at(0), Bucket: time.Minute}); len(st.Queues) != 0 || st.Queues == nil {
			t.Fatalf("queues of an empty tenant: got %#v, want an empty list", st.Queues)
		}
	}},
	{"LeasesExpiringFirstFirst", func(t *testing.T, s store.Store) {
		queueFixture(t, s)
		late := claim(t, s, create(t, s, tenantB, at(0), commonops.CreateInput{TaskType: "report", EntityType: "order"}), at(5))
		st := queueStats(t, s, store.QueueQuery{TenantID: tenantA, Now: at(100), LeaseLimit: 10})
		if len(st.Leases) != 2 {
			t.Fatalf("leases of tenant A: got %+v, want the two processing exports", st.Leases)
		}
		for i, exp := range []time.Time{at(80), at(90)} {
			l := st.Leases[i]
			if l.TaskType != "export" || l.EntityType != "product" || l.WorkerID != "w" || l.Attempt != 1 || !l.ExpiresAt.Equal(exp) || l.TaskID == "" {
				t.Fatalf("lease %d: got %+v, want export/product held by w, attempt 1, expiring %v", i, l, exp)
			}
		}
		st = queueStats(t, s, store.QueueQuery{Now: at(100), LeaseLimit: 1})
		if len(st.Leases) != 1 || st.Leases[0].TaskID != late.ID || !st.Leases[0].ExpiresAt.Equal(at(65)) {
			t.Fatalf("first lease of every tenant: got %+v, want tenant B's task %s expiring %v", st.Leases, late.ID, at(65))
		}
	}},
}
