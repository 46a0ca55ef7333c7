package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// roundTripTests write a task whose every field is set (filledTask) through
// each way a driver writes a task row, read it back through each way it
// reads one, and compare every field (equalFields): a column that a driver
// forgets to write or to read fails here, also for a field added later.
var roundTripTests = []test{
	{"CreateThenGetAndList", func(t *testing.T, s store.Store) {
		want := filledTask(t, uuid.NewString(), tenantA, 1)
		in := filledTask(t, want.ID, tenantA, 1)
		if _, err := s.CreateTask(context.Background(), in, commonops.Change{Event: commonops.EventCreated}, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		equalFields(t, "GetTask", get(t, s, tenantA, want.ID), want)
		equalFields(t, "ListTasks", listOne(t, s, want.ID), want)
	}},
	{"UpdateTaskWritesEveryField", func(t *testing.T, s store.Store) {
		id := createFilled(t, s, 1)
		want := filledTask(t, id, tenantA, 2)
		got := update(t, s, tenantA, id, func(x *commonops.Task) (commonops.Change, error) {
			*x = *filledTask(t, id, tenantA, 2)
			return commonops.Change{Event: commonops.EventProgress}, nil
		})
		equalFields(t, "UpdateTask's answer", got, want)
		equalFields(t, "GetTask after UpdateTask", get(t, s, tenantA, id), want)
		equalFields(t, "ListTasks after UpdateTask", listOne(t, s, id), want)
	}},
	{"UpdateTaskFromWritesEveryField", func(t *testing.T, s store.Store) {
		id := createFilled(t, s, 1)
		known := get(t, s, tenantA, id)
		want := filledTask(t, id, tenantA, 2)
		got, err := s.UpdateTaskFrom(context.Background(), known, func(x *commonops.Task) (commonops.Change, error) {
			*x = *filledTask(t, id, tenantA, 2)
			return commonops.Change{Event: commonops.EventProgress}, nil
		})
		if err != nil {
			t.Fatalf("UpdateTaskFrom: %v", err)
		}
		equalFields(t, "UpdateTaskFrom's answer", got, want)
		equalFields(t, "GetTask after UpdateTaskFrom", get(t, s, tenantA, id), want)
	}},
	{"ClaimNextReturnsEveryField", func(t *testing.T, s store.Store) {
		runnable := func(x *commonops.Task) {
			x.Status, x.UploadStatus, x.CancelRequested = commonops.StatusPending, commonops.UploadUploaded, false
			x.AvailableAt = ptr(at(-1))
		}
		tk := filledTask(t, uuid.NewString(), tenantA, 1)
		runnable(tk)
		if _, err := s.CreateTask(context.Background(), tk, commonops.Change{Event: commonops.EventCreated}, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		want := filledTask(t, tk.ID, tenantA, 1)
		runnable(want)
		if _, err := want.Claim("worker-rt", time.Minute, at(0)); err != nil {
			t.Fatalf("Claim of the filled task: %v", err)
		}
		got := claimNext(t, s, store.ClaimParams{WorkerID: "worker-rt", Lease: time.Minute, Limit: 1, Now: at(0)})
		if len(got) != 1 {
			t.Fatalf("ClaimNext: got %d tasks, want 1", len(got))
		}
		equalFields(t, "ClaimNext's answer", got[0], want)
		equalFields(t, "GetTask after ClaimNext", get(t, s, tenantA, tk.ID), want)
	}},
	{"DeleteTaskReturnsEveryField", func(t *testing.T, s store.Store) {
		tk := filledTask(t, uuid.NewString(), tenantA, 1)
		tk.Status = commonops.StatusCompleted
		if _, err := s.CreateTask(context.Background(), tk, commonops.Change{Event: commonops.EventCreated}, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		want := filledTask(t, tk.ID, tenantA, 1)
		want.Status = commonops.StatusCompleted
		got, err := s.DeleteTask(context.Background(), tenantA, tk.ID)
		if err != nil {
			t.Fatalf("DeleteTask: %v", err)
		}
		equalFields(t, "DeleteTask's answer", got, want)
	}},
}

// createFilled stores filledTask(seed) of tenant A and returns its id.
func createFilled(t *testing.T, s store.Store, seed int) string {
	t.Helper()
	tk := filledTask(t, uuid.NewString(), tenantA, seed)
	if _, err := s.CreateTask(context.Background(), tk, commonops.Change{Event: commonops.EventCreated}, nil); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	return tk.ID
}

// listOne returns the task id from ListTasks of tenant A, which must hold
// only it.
func listOne(t *testing.T, s store.Store, id string) *commonops.Task {
	t.Helper()
	tasks, total, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if total != 1 || len(tasks) != 1 || tasks[0].ID != id {
		t.Fatalf("ListTasks: got %v (total %d), want [%s]", ids(tasks), total, id)
	}
	return tasks[0]
}
