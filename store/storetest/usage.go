package storetest

import (
	"context"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// usage calls TenantUsage and fails the test on error.
func usage(t *testing.T, s store.Store, tenant string, q store.UsageQuery) store.Usage {
	t.Helper()
	u, err := s.TenantUsage(context.Background(), tenant, q)
	if err != nil {
		t.Fatalf("TenantUsage %s: %v", tenant, err)
	}
	return u
}

var usageTests = []test{
	{"CreatedAfterCountsUpToBound", func(t *testing.T, s store.Store) {
		for i := range 5 {
			create(t, s, tenantA, at(i), commonops.CreateInput{})
		}
		create(t, s, tenantB, at(4), commonops.CreateInput{})
		u := usage(t, s, tenantA, store.UsageQuery{CreatedAfter: at(1), CreatedUpTo: 10})
		if u.Created != 3 || !u.FirstCreated.Equal(at(2)) {
			t.Fatalf("created after at(1): got %d, first %v; want 3, first %v (the later ones of this tenant only)", u.Created, u.FirstCreated, at(2))
		}
		if u = usage(t, s, tenantA, store.UsageQuery{CreatedAfter: at(-1), CreatedUpTo: 2}); u.Created != 2 {
			t.Fatalf("created, bound 2: got %d, want 2", u.Created)
		}
		if u = usage(t, s, tenantA, store.UsageQuery{CreatedAfter: at(10), CreatedUpTo: 10}); u.Created != 0 || !u.FirstCreated.IsZero() {
			t.Fatalf("created after the last: got %d, first %v; want 0, zero time", u.Created, u.FirstCreated)
		}
		if u = usage(t, s, tenantA, store.UsageQuery{CreatedAfter: at(-1)}); u.Created != 0 {
			t.Fatalf("created without a bound: got %d, want 0 (not measured)", u.Created)
		}
	}},
	{"HeavyCountsUnfinishedOfTypes", func(t *testing.T, s store.Store) {
		pending := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "export"})
		claim(t, s, create(t, s, tenantA, at(1), commonops.CreateInput{TaskType: "export"}), at(2))
		create(t, s, tenantA, at(2), commonops.CreateInput{TaskType: "import", ScheduledAt: ptr(at(3600))})
		complete(t, s, create(t, s, tenantA, at(3), commonops.CreateInput{TaskType: "export"}), at(4))
		cancel(t, s, create(t, s, tenantA, at(4), commonops.CreateInput{TaskType: "import"}), at(5))
		create(t, s, tenantA, at(5), commonops.CreateInput{TaskType: "report"})
		create(t, s, tenantB, at(5), commonops.CreateInput{TaskType: "export"})
		q := store.UsageQuery{HeavyTypes: []string{"import", "export"}, HeavyUpTo: 10}
		if u := usage(t, s, tenantA, q); u.Heavy != 3 {
			t.Fatalf("unfinished import and export tasks: got %d, want 3 (pending, processing, scheduled)", u.Heavy)
		}
		q.HeavyUpTo = 2
		if u := usage(t, s, tenantA, q); u.Heavy != 2 {
			t.Fatalf("heavy, bound 2: got %d, want 2", u.Heavy)
		}
		cancel(t, s, pending, at(6))
		q.HeavyUpTo = 10
		if u := usage(t, s, tenantA, q); u.Heavy != 2 {
			t.Fatalf("heavy after a cancel: got %d, want 2", u.Heavy)
		}
		if u := usage(t, s, tenantA, store.UsageQuery{HeavyUpTo: 10}); u.Heavy != 0 {
			t.Fatalf("heavy without types: got %d, want 0 (not measured)", u.Heavy)
		}
	}},
	{"StoredBytesSumsTasksAndFreesOnDelete", func(t *testing.T, s store.Store) {
		a := create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("a.csv")})
		update(t, s, tenantA, a.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmInput("e", 1000, at(1)) })
		b := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(2))
		update(t, s, tenantA, b.ID, func(x *commonops.Task) (commonops.Change, error) {
			ch, err := x.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, 0, 0, at(3))
			x.ConfirmErrors(234)
			return ch, err
		})
		c := create(t, s, tenantB, at(0), commonops.CreateInput{FileName: ptr("c.csv")})
		update(t, s, tenantB, c.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmInput("e", 7, at(1)) })
		if u := usage(t, s, tenantA, store.UsageQuery{StoredBytes: true}); u.StoredBytes != 1234 {
			t.Fatalf("stored bytes: got %d, want 1234", u.StoredBytes)
		}
		if u := usage(t, s, tenantA, store.UsageQuery{}); u.StoredBytes != 0 {
			t.Fatalf("stored bytes not asked: got %d, want 0 (not measured)", u.StoredBytes)
		}
		if _, err := s.DeleteTask(context.Background(), tenantA, b.ID); err != nil {
			t.Fatalf("DeleteTask: %v", err)
		}
		if u := usage(t, s, tenantA, store.UsageQuery{StoredBytes: true}); u.StoredBytes != 1000 {
			t.Fatalf("stored bytes after a delete: got %d, want 1000", u.StoredBytes)
		}
		if u := usage(t, s, "tenant-none", store.UsageQuery{StoredBytes: true, CreatedUpTo: 5, HeavyTypes: []string{"export"}, HeavyUpTo: 5}); u != (store.Usage{}) {
			t.Fatalf("usage of a tenant without tasks: got %+v, want zero", u)
		}
	}},
}
