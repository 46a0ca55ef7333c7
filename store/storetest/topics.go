package storetest

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// RunTopics proves a driver's Config.Topics and Config.HeaderPayload, as
// app.OpenStore sets them for the embedded bus: open returns a fresh store
// that writes outbox rows for the topics it is given only, with the task's
// header (commonops.Task.AppendHeaderJSON) as their payload when header is
// set. With the worker's topics, a create, a retry and a cancel write
// their messages, and progress, completion and failure write none; every
// change still records its event, and a completion or failure still
// writes its webhook deliveries, with the whole task's JSON. A cancel,
// which notifies webhooks too, carries the whole task in both.
func RunTopics(t *testing.T, open func(t *testing.T, topics []string, header bool) store.Store) {
	s := open(t, commonops.WorkerTopics, true)

	done := create(t, s, tenantA, at(0), commonops.CreateInput{CallbackURL: ptr(hookURL)})
	claim(t, s, done, at(1))
	update(t, s, tenantA, done.ID, report(commonops.Progress{Progress: ptr(50.0)}, 1, at(2)))
	update(t, s, tenantA, done.ID, report(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, 1, at(3)))

	failed := create(t, s, tenantA, at(4), commonops.CreateInput{CallbackURL: ptr(hookURL), MaxRetries: ptr(1)})
	claim(t, s, failed, at(5))
	update(t, s, tenantA, failed.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.FailAttempt("again", false, 0, at(6)), nil // retried
	})
	claim(t, s, failed, at(7))
	update(t, s, tenantA, failed.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.FailAttempt("boom", true, 0, at(8)), nil // failed for good
	})

	cancelled := cancel(t, s, create(t, s, tenantA, at(9), commonops.CreateInput{}), at(10))

	batch := newBatch(t, tenantA, 1)
	createTasks(t, s, batch)

	type msg struct{ task, topic string }
	var got []msg
	for _, m := range drain(t, s) {
		got = append(got, msg{m.TaskID, m.Topic})
		var fields map[string]json.RawMessage
		var task commonops.Task
		if err := json.Unmarshal(m.Payload, &fields); err != nil {
			t.Fatalf("payload of %s %s: %v", m.Topic, m.TaskID, err)
		}
		if err := json.Unmarshal(m.Payload, &task); err != nil {
			t.Fatalf("payload of %s %s: %v", m.Topic, m.TaskID, err)
		}
		if task.ID != m.TaskID || task.TenantID != tenantA || task.TaskType != "import" || task.Version == 0 || task.UpdatedAt.IsZero() {
			t.Fatalf("payload of %s %s: got %s, want the task's id, tenant, kind, version and time", m.Topic, m.TaskID, m.Payload)
		}
		switch m.Topic {
		case commonops.TopicCancelled:
			if task.Status != commonops.StatusCancelled || task.RequestedBy != "user-1" {
				t.Fatalf("payload of the cancel: got %s, want the whole cancelled task", m.Payload)
			}
		default:
			if task.Status != commonops.StatusPending || len(fields) != 8 {
				t.Fatalf("payload of %s %s: got %s, want the header of the pending task (8 fields)", m.Topic, m.TaskID, m.Payload)
			}
		}
	}
	want := []msg{
		{done.ID, commonops.TopicCreated},
		{failed.ID, commonops.TopicCreated},
		{failed.ID, commonops.TopicRetried},
		{cancelled.ID, commonops.TopicCreated},
		{cancelled.ID, commonops.TopicCancelled},
		{batch[0].Task.ID, commonops.TopicCreated},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox with the worker's topics: got %v, want %v", got, want)
	}

	for _, c := range []struct {
		task   *commonops.Task
		events []string
		hook   string
	}{
		{done, []string{commonops.EventCreated, commonops.EventStarted, commonops.EventProgress, commonops.EventCompleted}, commonops.TopicCompleted},
		{failed, []string{commonops.EventCreated, commonops.EventStarted, commonops.EventRetryScheduled, commonops.EventStarted, commonops.EventFailed}, commonops.TopicFailed},
	} {
		if got := events(t, s, tenantA, c.task.ID); !slices.Equal(got, c.events) {
			t.Fatalf("events of %s: got %v, want %v", c.task.ID, got, c.events)
		}
		ds := listDeliveries(t, s, tenantA, c.task.ID)
		if len(ds) != 1 || ds[0].EventType != c.hook || ds[0].URL != hookURL {
			t.Fatalf("webhook deliveries of %s: got %+v, want one %s to %s", c.task.ID, ds, c.hook, hookURL)
		}
	}
	due := claimDue(t, s, at(8))
	if len(due) != 2 {
		t.Fatalf("due deliveries: got %d, want 2", len(due))
	}
	for _, d := range due {
		stored := get(t, s, tenantA, d.TaskID)
		var payload commonops.Task
		if err := json.Unmarshal(d.Payload, &payload); err != nil {
			t.Fatalf("payload of %s: %v", d.TaskID, err)
		}
		if payload.ID != stored.ID || payload.Status != stored.Status || payload.Version != stored.Version || payload.RequestedBy != stored.RequestedBy {
			t.Fatalf("payload: got task %s %s v%d, want %s %s v%d", payload.ID, payload.Status, payload.Version, stored.ID, stored.Status, stored.Version)
		}
	}
}
