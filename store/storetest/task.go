package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

var createTests = []test{
	{"RunnableWritesEventAndOutbox", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		if got, want := events(t, s, tenantA, tk.ID), []string{commonops.EventCreated}; !slices.Equal(got, want) {
			t.Fatalf("events: got %v, want %v", got, want)
		}
		msgs := drain(t, s)
		if len(msgs) != 1 {
			t.Fatalf("outbox rows: got %d, want 1", len(msgs))
		}
		m := msgs[0]
		if m.Topic != commonops.TopicCreated || m.TenantID != tenantA || m.TaskID != tk.ID {
			t.Fatalf("outbox row: got topic %q tenant %q task %q, want %q %q %q", m.Topic, m.TenantID, m.TaskID, commonops.TopicCreated, tenantA, tk.ID)
		}
		var payload commonops.Task
		if err := json.Unmarshal(m.Payload, &payload); err != nil {
			t.Fatalf("outbox payload is not a task: %v", err)
		}
		if payload.ID != tk.ID || payload.Status != commonops.StatusPending {
			t.Fatalf("outbox payload: got id %s status %s, want %s pending", payload.ID, payload.Status, tk.ID)
		}
	}},
	{"NotRunnableWritesEventOnly", func(t *testing.T, s store.Store) {
		awaiting := create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("a.csv")})
		scheduled := create(t, s, tenantA, at(0), commonops.CreateInput{ScheduledAt: ptr(at(3600))})
		for _, tk := range []*commonops.Task{awaiting, scheduled} {
			if got, want := events(t, s, tenantA, tk.ID), []string{commonops.EventCreated}; !slices.Equal(got, want) {
				t.Fatalf("events of %s task: got %v, want %v", tk.Status, got, want)
			}
		}
		if got := backlog(t, s); got != 0 {
			t.Fatalf("outbox backlog: got %d, want 0", got)
		}
	}},
	{"DuplicateIDConflicts", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		dup, ch := newTask(t, tenantA, at(1), commonops.CreateInput{})
		dup.ID = tk.ID
		_, err := s.CreateTask(context.Background(), dup, ch, nil)
		wantCode(t, "CreateTask with a taken id", err, commonops.ECONFLICT)
		equalTask(t, "first task", get(t, s, tenantA, tk.ID), tk)
	}},
	{"IdempotencyKeyReplays", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		first, ch := newTask(t, tenantA, at(0), commonops.CreateInput{})
		idem := &store.Idempotency{TenantID: tenantA, Key: "key-1", RequestHash: "hash-1", TaskID: first.ID, StatusCode: 201, Response: json.RawMessage(`{"task": {"id": "x"}}`), CreatedAt: at(0)}
		prior, err := s.CreateTask(ctx, first, ch, idem)
		if err != nil || prior != nil {
			t.Fatalf("first CreateTask: got prior %v err %v, want nil nil", prior, err)
		}
		second, ch2 := newTask(t, tenantA, at(1), commonops.CreateInput{})
		prior, err = s.CreateTask(ctx, second, ch2, &store.Idempotency{TenantID: tenantA, Key: "key-1", RequestHash: "hash-2", TaskID: second.ID, StatusCode: 201, Response: json.RawMessage(`{}`), CreatedAt: at(1)})
		if err != nil {
			t.Fatalf("replayed CreateTask: %v", err)
		}
		if prior == nil {
			t.Fatal("replayed CreateTask: got no prior record, want the stored one")
		}
		if prior.RequestHash != "hash-1" || prior.TaskID != first.ID || prior.StatusCode != 201 || prior.Key != "key-1" || prior.TenantID != tenantA {
			t.Fatalf("prior: got %+v, want hash-1, task %s, 201", prior, first.ID)
		}
		if !jsonEqual(t, prior.Response, idem.Response) {
			t.Fatalf("prior response: got %s, want %s", prior.Response, idem.Response)
		}
		if !prior.CreatedAt.Equal(at(0)) {
			t.Fatalf("prior createdAt: got %v, want %v", prior.CreatedAt, at(0))
		}
		_, err = s.GetTask(ctx, tenantA, second.ID)
		wantCode(t, "GetTask of the replayed request's task", err, commonops.ENOTFOUND)
		if _, total, _ := s.ListTasks(ctx, commonops.ListFilter{TenantID: tenantA}); total != 1 {
			t.Fatalf("tasks after replay: got %d, want 1", total)
		}
		if got := backlog(t, s); got != 1 {
			t.Fatalf("outbox backlog after replay: got %d, want 1", got)
		}
		// The same key is another key in another tenant.
		other, ch3 := newTask(t, tenantB, at(2), commonops.CreateInput{})
		prior, err = s.CreateTask(ctx, other, ch3, &store.Idempotency{TenantID: tenantB, Key: "key-1", RequestHash: "hash-1", TaskID: other.ID, StatusCode: 201, Response: json.RawMessage(`{}`), CreatedAt: at(2)})
		if err != nil || prior != nil {
			t.Fatalf("CreateTask with tenant B's first use of the key: got prior %v err %v, want nil nil", prior, err)
		}
	}},
	{"ConcurrentSameKeyInsertsOnce", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		const n = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		created, replayed := 0, 0
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk, ch := newTask(t, tenantA, at(i), commonops.CreateInput{})
				prior, err := s.CreateTask(ctx, tk, ch, &store.Idempotency{TenantID: tenantA, Key: "k", RequestHash: "h", TaskID: tk.ID, StatusCode: 201, Response: json.RawMessage(`{}`), CreatedAt: at(i)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("CreateTask: %v", err)
				case prior == nil:
					created++
				default:
					replayed++
				}
			}()
		}
		wg.Wait()
		if created != 1 || replayed != n-1 {
			t.Fatalf("got %d created and %d replayed, want 1 and %d", created, replayed, n-1)
		}
		if _, total, _ := s.ListTasks(ctx, commonops.ListFilter{TenantID: tenantA}); total != 1 {
			t.Fatalf("tasks: got %d, want 1", total)
		}
	}},
}

var getTests = []test{
	{"UnknownIsNotFound", func(t *testing.T, s store.Store) {
		_, err := s.GetTask(context.Background(), tenantA, uuid.NewString())
		wantCode(t, "GetTask of an unknown id", err, commonops.ENOTFOUND)
	}},
	{"Ping", func(t *testing.T, s store.Store) {
		if err := s.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: got %v, want nil", err)
		}
	}},
}

func ids(tasks []*commonops.Task) []string {
	out := []string{}
	for _, tk := range tasks {
		out = append(out, tk.ID)
	}
	return out
}

func sortedIDs(tasks ...*commonops.Task) []string {
	out := ids(tasks)
	slices.Sort(out)
	return out
}

// listFixture stores a varied set of tenant A's tasks, one a second from at(0).
type listFixture struct {
	pending, scheduled, processing, completed, failed, cancelled, export, bob *commonops.Task
	all                                                                       []*commonops.Task
}

func newListFixture(t *testing.T, s store.Store) *listFixture {
	f := &listFixture{}
	mk := func(i int, in commonops.CreateInput) *commonops.Task {
		tk := create(t, s, tenantA, at(i), in)
		f.all = append(f.all, tk)
		return tk
	}
	f.pending = mk(0, commonops.CreateInput{Priority: ptr(1), FileName: ptr("Products-2024.CSV")})
	f.scheduled = mk(1, commonops.CreateInput{Priority: ptr(2), ScheduledAt: ptr(at(7200))})
	f.processing = mk(2, commonops.CreateInput{Priority: ptr(3)})
	f.completed = mk(3, commonops.CreateInput{Priority: ptr(4)})
	f.failed = mk(4, commonops.CreateInput{Priority: ptr(5)})
	f.cancelled = mk(5, commonops.CreateInput{Priority: ptr(6), EntityType: "customer"})
	f.export = mk(6, commonops.CreateInput{Priority: ptr(7), TaskType: "export", EntityType: "order"})
	f.bob = mk(7, commonops.CreateInput{Priority: ptr(8), RequestedBy: ptr("bob")})
	// Upload confirmed, so the pending one is runnable; counts differ.
	update(t, s, tenantA, f.pending.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmUpload(at(10)) })
	claim(t, s, f.processing, at(20))
	update(t, s, tenantA, f.processing.ID, func(x *commonops.Task) (commonops.Change, error) {
		return x.ApplyProgress(commonops.Progress{Progress: ptr(40.0), Message: ptr("Halfway through the ROWS")}, time.Minute, 0, at(21))
	})
	complete(t, s, f.completed, at(30))
	fail(t, s, f.failed, at(40))
	cancel(t, s, f.cancelled, at(50))
	// Another tenant's tasks never show up in tenant A's lists.
	create(t, s, tenantB, at(3), commonops.CreateInput{})
	for i, tk := range f.all {
		f.all[i] = get(t, s, tenantA, tk.ID)
	}
	return f
}

var listTests = []test{
	{"Filters", func(t *testing.T, s store.Store) {
		f := newListFixture(t, s)
		cases := []struct {
			name   string
			filter commonops.ListFilter
			want   []*commonops.Task
		}{
			{"none", commonops.ListFilter{}, f.all},
			{"taskType", commonops.ListFilter{TaskType: "export"}, []*commonops.Task{f.export}},
			{"entityType", commonops.ListFilter{EntityType: "customer"}, []*commonops.Task{f.cancelled}},
			{"requestedBy", commonops.ListFilter{RequestedBy: "bob"}, []*commonops.Task{f.bob}},
			{"one status", commonops.ListFilter{Statuses: []commonops.Status{commonops.StatusFailed}}, []*commonops.Task{f.failed}},
			{"statuses", commonops.ListFilter{Statuses: []commonops.Status{commonops.StatusCompleted, commonops.StatusScheduled, commonops.StatusProcessing}}, []*commonops.Task{f.completed, f.scheduled, f.processing}},
			{"startDate inclusive", commonops.ListFilter{StartDate: ptr(at(6))}, []*commonops.Task{f.export, f.bob}},
			{"endDate exclusive", commonops.ListFilter{EndDate: ptr(at(1))}, []*commonops.Task{f.pending}},
			{"date range", commonops.ListFilter{StartDate: ptr(at(2)), EndDate: ptr(at(4))}, []*commonops.Task{f.processing, f.completed}},
			{"search file name any case", commonops.ListFilter{Search: "products-2024"}, []*commonops.Task{f.pending}},
			{"search message", commonops.ListFilter{Search: "halfway"}, []*commonops.Task{f.processing}},
			{"search error message", commonops.ListFilter{Search: "BOOM"}, []*commonops.Task{f.failed}},
			{"search id prefix", commonops.ListFilter{Search: f.export.ID[:13]}, []*commonops.Task{f.export}},
			{"search id prefix any case", commonops.ListFilter{Search: strings.ToUpper(f.bob.ID[:8])}, []*commonops.Task{f.bob}},
			{"search wildcard is literal", commonops.ListFilter{Search: "%"}, nil},
			{"search underscore is literal", commonops.ListFilter{Search: "_"}, nil},
			{"combined", commonops.ListFilter{TaskType: "import", Statuses: []commonops.Status{commonops.StatusPending, commonops.StatusCancelled}, EntityType: "product"}, []*commonops.Task{f.pending, f.bob}},
			{"no match", commonops.ListFilter{TaskType: "nothing"}, nil},
		}
		for _, c := range cases {
			c.filter.TenantID = tenantA
			got, total, err := s.ListTasks(context.Background(), c.filter)
			if err != nil {
				t.Fatalf("%s: ListTasks: %v", c.name, err)
			}
			if g, w := sortedIDs(got...), sortedIDs(c.want...); !slices.Equal(g, w) {
				t.Errorf("%s: got ids %v, want %v", c.name, g, w)
			}
			if total != len(c.want) {
				t.Errorf("%s: got total %d, want %d", c.name, total, len(c.want))
			}
		}
	}},
	{"ReturnsFullTasks", func(t *testing.T, s store.Store) {
		f := newListFixture(t, s)
		got, _, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, Statuses: []commonops.Status{commonops.StatusProcessing}})
		if err != nil || len(got) != 1 {
			t.Fatalf("ListTasks: got %d tasks, err %v; want 1", len(got), err)
		}
		equalTask(t, "listed task", got[0], get(t, s, tenantA, f.processing.ID))
	}},
	{"Sort", func(t *testing.T, s store.Store) {
		f := newListFixture(t, s)
		byCreated := ids(f.all)
		reversed := slices.Clone(byCreated)
		slices.Reverse(reversed)
		// completedAt: completed at(30+), failed at(40), cancelled at(50); others null (last).
		cases := []struct {
			sort commonops.Sort
			want []string // a prefix of the expected order
		}{
			{commonops.Sort{}, reversed},
			{commonops.Sort{Field: "createdAt"}, byCreated},
			{commonops.Sort{Field: "createdAt", Desc: true}, reversed},
			{commonops.Sort{Field: "priority"}, byCreated},
			{commonops.Sort{Field: "priority", Desc: true}, reversed},
			{commonops.Sort{Field: "completedAt"}, []string{f.completed.ID, f.failed.ID, f.cancelled.ID}},
			{commonops.Sort{Field: "completedAt", Desc: true}, []string{f.cancelled.ID, f.failed.ID, f.completed.ID}},
			{commonops.Sort{Field: "scheduledAt"}, []string{f.scheduled.ID}},
			{commonops.Sort{Field: "scheduledAt", Desc: true}, []string{f.scheduled.ID}},
			{commonops.Sort{Field: "progress", Desc: true}, []string{f.completed.ID, f.processing.ID}},
			{commonops.Sort{Field: "updatedAt", Desc: true}, []string{f.cancelled.ID, f.failed.ID, f.completed.ID, f.processing.ID, f.pending.ID}},
			{commonops.Sort{Field: "status"}, []string{f.cancelled.ID, f.completed.ID, f.failed.ID}},
		}
		for _, c := range cases {
			got, _, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, Sort: c.sort})
			if err != nil {
				t.Fatalf("sort %+v: %v", c.sort, err)
			}
			if g := ids(got); len(g) != len(f.all) || !slices.Equal(g[:len(c.want)], c.want) {
				t.Errorf("sort %+v: got %v, want it to start with %v", c.sort, g, c.want)
			}
		}
	}},
	{"UnknownSortIsInvalid", func(t *testing.T, s store.Store) {
		_, _, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, Sort: commonops.Sort{Field: "id; DROP TABLE tasks"}})
		wantCode(t, "ListTasks with an unknown sort", err, commonops.EINVALID)
	}},
	{"Pagination", func(t *testing.T, s store.Store) {
		var want []string
		for i := range 5 {
			want = append(want, create(t, s, tenantA, at(i), commonops.CreateInput{}).ID)
		}
		var seen []string
		for page, wantLen := range map[int]int{1: 2, 2: 2, 3: 1, 4: 0} {
			got, total, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, Page: page, PageSize: 2, Sort: commonops.Sort{Field: "createdAt"}})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			if len(got) != wantLen || total != 5 {
				t.Fatalf("page %d: got %d tasks of %d, want %d of 5", page, len(got), total, wantLen)
			}
			if wantLen > 0 && got[0].ID != want[(page-1)*2] {
				t.Fatalf("page %d: got first %s, want %s", page, got[0].ID, want[(page-1)*2])
			}
			seen = append(seen, ids(got)...)
		}
		slices.Sort(seen)
		slices.Sort(want)
		if !slices.Equal(seen, want) {
			t.Fatalf("pages together: got %v, want %v", seen, want)
		}
		got, _, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA})
		if err != nil || len(got) != 5 {
			t.Fatalf("default page: got %d tasks, err %v; want 5", len(got), err)
		}
	}},
	{"PageSizeDefaultAndMax", func(t *testing.T, s store.Store) {
		for i := range commonops.PageSizeDefault + 1 {
			create(t, s, tenantA, at(i), commonops.CreateInput{})
		}
		got, total, err := s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA})
		if err != nil || len(got) != commonops.PageSizeDefault || total != commonops.PageSizeDefault+1 {
			t.Fatalf("zero page size: got %d of %d (err %v), want %d of %d", len(got), total, err, commonops.PageSizeDefault, commonops.PageSizeDefault+1)
		}
		got, _, err = s.ListTasks(context.Background(), commonops.ListFilter{TenantID: tenantA, PageSize: 100000, Page: 1})
		if err != nil || len(got) != commonops.PageSizeDefault+1 {
			t.Fatalf("huge page size: got %d (err %v), want %d", len(got), err, commonops.PageSizeDefault+1)
		}
	}},
}

var isolationTests = []test{
	{"OtherTenantSeesNothing", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		claimed := claim(t, s, tk, at(1))
		if err := s.AppendLogs(ctx, tenantA, tk.ID, nil, []commonops.LogEntry{{Level: commonops.LogInfo, Message: "a's line", CreatedAt: at(2)}}); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
		_, err := s.GetTask(ctx, tenantB, tk.ID)
		wantCode(t, "GetTask as B", err, commonops.ENOTFOUND)
		if got, total, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: tenantB}); err != nil || len(got) != 0 || total != 0 {
			t.Fatalf("ListTasks as B: got %d tasks, total %d, err %v; want none", len(got), total, err)
		}
		if got, total, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: tenantB, Search: tk.ID}); err != nil || len(got) != 0 || total != 0 {
			t.Fatalf("ListTasks as B searching A's id: got %d tasks, total %d, err %v; want none", len(got), total, err)
		}
		called := false
		_, err = s.UpdateTask(ctx, tenantB, tk.ID, func(x *commonops.Task) (commonops.Change, error) { called = true; return x.Cancel(at(3)) })
		wantCode(t, "UpdateTask as B", err, commonops.ENOTFOUND)
		if called {
			t.Fatal("UpdateTask as B: fn was called with A's task")
		}
		_, err = s.DeleteTask(ctx, tenantB, tk.ID)
		wantCode(t, "DeleteTask as B", err, commonops.ENOTFOUND)
		err = s.AppendLogs(ctx, tenantB, tk.ID, nil, []commonops.LogEntry{{Level: commonops.LogInfo, Message: "b's line", CreatedAt: at(3)}})
		wantCode(t, "AppendLogs as B", err, commonops.ENOTFOUND)
		_, _, err = s.ListLogs(ctx, commonops.LogFilter{TenantID: tenantB, TaskID: tk.ID})
		wantCode(t, "ListLogs as B", err, commonops.ENOTFOUND)
		_, err = s.ListEvents(ctx, tenantB, tk.ID, 0, 0)
		wantCode(t, "ListEvents as B", err, commonops.ENOTFOUND)

		equalTask(t, "A's task after B's attempts", get(t, s, tenantA, tk.ID), claimed)
		if logs, total, err := s.ListLogs(ctx, commonops.LogFilter{TenantID: tenantA, TaskID: tk.ID}); err != nil || total != 1 || logs[0].Message != "a's line" {
			t.Fatalf("A's logs: got %v (total %d, err %v), want only a's line", logs, total, err)
		}
	}},
}

var updateTests = []test{
	{"WritesTaskEventAndOutbox", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		drain(t, s)
		got := cancel(t, s, tk, at(5))
		if got.Status != commonops.StatusCancelled || got.Version != tk.Version+1 || !got.UpdatedAt.Equal(at(5)) {
			t.Fatalf("returned task: got status %s version %d updatedAt %v, want cancelled %d %v", got.Status, got.Version, got.UpdatedAt, tk.Version+1, at(5))
		}
		equalTask(t, "GetTask after UpdateTask", get(t, s, tenantA, tk.ID), got)
		evs, err := s.ListEvents(context.Background(), tenantA, tk.ID, 0, 0)
		if err != nil || len(evs) != 2 {
			t.Fatalf("events: got %d (err %v), want 2", len(evs), err)
		}
		e := evs[1]
		if e.EventType != commonops.EventCancelled || e.TaskID != tk.ID || !e.CreatedAt.Equal(at(5)) {
			t.Fatalf("event: got %s on %s at %v, want cancelled on %s at %v", e.EventType, e.TaskID, e.CreatedAt, tk.ID, at(5))
		}
		if !jsonEqual(t, e.EventData, []byte(`{"from":"pending","to":"cancelled"}`)) {
			t.Fatalf("event data: got %s, want from pending to cancelled", e.EventData)
		}
		if got := topics(drain(t, s)); !slices.Equal(got, []string{commonops.TopicCancelled}) {
			t.Fatalf("outbox topics: got %v, want [%s]", got, commonops.TopicCancelled)
		}
	}},
	{"FnErrorChangesNothing", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		_, err := s.UpdateTask(context.Background(), tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			x.Cancel(at(1))
			return commonops.Change{Event: "cancelled", Topic: commonops.TopicCancelled}, errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("UpdateTask: got %v, want fn's error", err)
		}
		_, err = s.UpdateTask(context.Background(), tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Retry(false, at(1)) })
		wantCode(t, "retry of a pending task", err, commonops.ECONFLICT)
		equalTask(t, "task after failed updates", get(t, s, tenantA, tk.ID), tk)
		if got := events(t, s, tenantA, tk.ID); len(got) != 1 {
			t.Fatalf("events: got %v, want only created", got)
		}
		if got := backlog(t, s); got != 1 {
			t.Fatalf("outbox backlog: got %d, want 1", got)
		}
	}},
	{"NoEventWritesNoRows", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		claimed := claim(t, s, tk, at(1))
		drain(t, s)
		got := update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Heartbeat(ptr(1), time.Hour, at(2)) })
		// Renewed by the length of the claimed lease.
		wantLease := at(2).Add(claimed.LeaseExpiresAt.Sub(claimed.UpdatedAt))
		if !got.LeaseExpiresAt.Equal(wantLease) || got.Version != claimed.Version+1 {
			t.Fatalf("heartbeat: got lease %v version %d, want %v %d", got.LeaseExpiresAt, got.Version, wantLease, claimed.Version+1)
		}
		equalTask(t, "GetTask after heartbeat", get(t, s, tenantA, tk.ID), got)
		if evs := events(t, s, tenantA, tk.ID); len(evs) != 2 {
			t.Fatalf("events: got %v, want created and started only", evs)
		}
		if n := backlog(t, s); n != 0 {
			t.Fatalf("outbox backlog: got %d, want 0", n)
		}
	}},
	{"EventWithoutTopicWritesNoOutbox", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("x.csv"), ScheduledAt: ptr(at(60))})
		got := update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmUpload(at(1)) })
		if got.UploadStatus != commonops.UploadUploaded || got.Status != commonops.StatusScheduled {
			t.Fatalf("confirm: got %s/%s, want uploaded/scheduled", got.UploadStatus, got.Status)
		}
		if evs := events(t, s, tenantA, tk.ID); !slices.Equal(evs, []string{commonops.EventCreated, commonops.EventUploadConfirmed}) {
			t.Fatalf("events: got %v, want created, upload_confirmed", evs)
		}
		if n := backlog(t, s); n != 0 {
			t.Fatalf("outbox backlog: got %d, want 0", n)
		}
	}},
	{"UnchangedTaskIsNotRewritten", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{FileName: ptr("x.csv")})
		first := update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmUpload(at(1)) })
		again := update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.ConfirmUpload(at(2)) })
		equalTask(t, "second confirm", again, first)
		if evs := events(t, s, tenantA, tk.ID); len(evs) != 2 {
			t.Fatalf("events: got %v, want created, upload_confirmed", evs)
		}
	}},
	{"EmptyTenantMatchesAny", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantB, at(0), commonops.CreateInput{})
		got := update(t, s, "", tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(at(1)) })
		if got.TenantID != tenantB || got.Status != commonops.StatusCancelled {
			t.Fatalf("got tenant %q status %s, want %q cancelled", got.TenantID, got.Status, tenantB)
		}
		_, err := s.UpdateTask(context.Background(), "", uuid.NewString(), func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(at(1)) })
		wantCode(t, "UpdateTask of an unknown id", err, commonops.ENOTFOUND)
	}},
	{"FnCannotMoveTaskToAnotherTenant", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		s.UpdateTask(context.Background(), tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			x.TenantID = tenantB
			return x.Cancel(at(1))
		})
		_, err := s.GetTask(context.Background(), tenantB, tk.ID)
		wantCode(t, "GetTask as B after fn set TenantID", err, commonops.ENOTFOUND)
		get(t, s, tenantA, tk.ID)
	}},
	{"ProgressEventThrottleIsKept", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		claim(t, s, tk, at(1))
		progress := func(p float64, now time.Time) *commonops.Task {
			return update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
				return x.ApplyProgress(commonops.Progress{Progress: &p}, time.Minute, 0, now)
			})
		}
		first := progress(10, at(2))
		if first.LastProgressEventAt == nil || !first.LastProgressEventAt.Equal(at(2)) {
			t.Fatalf("lastProgressEventAt: got %v, want %v", first.LastProgressEventAt, at(2))
		}
		progress(20, at(2).Add(500*time.Millisecond))
		progress(30, at(3))
		want := []string{commonops.EventCreated, commonops.EventStarted, commonops.EventProgress, commonops.EventProgress}
		if got := events(t, s, tenantA, tk.ID); !slices.Equal(got, want) {
			t.Fatalf("events: got %v, want %v", got, want)
		}
		if got := get(t, s, tenantA, tk.ID); got.Progress != 30 {
			t.Fatalf("progress: got %v, want 30", got.Progress)
		}
	}},
	{"ConcurrentClaimsOneWins", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		const n = 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UpdateTask(context.Background(), tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
					return x.Claim(fmt.Sprintf("w%d", i), time.Minute, at(1))
				})
				mu.Lock()
				defer mu.Unlock()
				switch commonops.ErrorCode(err) {
				case "":
					wins++
				case commonops.ECONFLICT:
					conflicts++
				default:
					t.Errorf("claim %d: got %v, want success or ECONFLICT", i, err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Fatalf("got %d wins and %d conflicts, want 1 and %d", wins, conflicts, n-1)
		}
		got := get(t, s, tenantA, tk.ID)
		if got.Attempt != 1 || got.Status != commonops.StatusProcessing {
			t.Fatalf("task: got attempt %d status %s, want 1 processing", got.Attempt, got.Status)
		}
		if evs := events(t, s, tenantA, tk.ID); !slices.Equal(evs, []string{commonops.EventCreated, commonops.EventStarted}) {
			t.Fatalf("events: got %v, want one created and one started", evs)
		}
	}},
	{"ConcurrentUpdatesAllApply", func(t *testing.T, s store.Store) {
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		claim(t, s, tk, at(1))
		const n = 10
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UpdateTask(context.Background(), tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
					return x.ApplyProgress(commonops.Progress{FailedItems: ptr(x.FailedItems + 1)}, time.Minute, 0, at(2+i))
				})
				if err != nil {
					t.Errorf("update %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if got := get(t, s, tenantA, tk.ID); got.FailedItems != n || got.Version != tk.Version+1+n {
			t.Fatalf("after %d increments: got failedItems %d version %d, want %d %d", n, got.FailedItems, got.Version, n, tk.Version+1+n)
		}
	}},
}

var deleteTests = []test{
	{"RefusesNonTerminal", func(t *testing.T, s store.Store) {
		for _, tk := range []*commonops.Task{
			create(t, s, tenantA, at(0), commonops.CreateInput{}),
			create(t, s, tenantA, at(0), commonops.CreateInput{ScheduledAt: ptr(at(60))}),
			claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1)),
		} {
			_, err := s.DeleteTask(context.Background(), tenantA, tk.ID)
			wantCode(t, "DeleteTask of a "+string(tk.Status)+" task", err, commonops.ECONFLICT)
			get(t, s, tenantA, tk.ID)
		}
	}},
	{"RemovesTaskLogsAndEvents", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		claim(t, s, tk, at(1))
		if err := s.AppendLogs(ctx, tenantA, tk.ID, ptr(1), []commonops.LogEntry{{Level: commonops.LogInfo, Message: "x", CreatedAt: at(2)}}); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
		done := update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) {
			return x.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, at(3))
		})
		deleted, err := s.DeleteTask(ctx, tenantA, tk.ID)
		if err != nil {
			t.Fatalf("DeleteTask: %v", err)
		}
		equalTask(t, "deleted task", deleted, done)
		_, err = s.GetTask(ctx, tenantA, tk.ID)
		wantCode(t, "GetTask after delete", err, commonops.ENOTFOUND)
		_, err = s.DeleteTask(ctx, tenantA, tk.ID)
		wantCode(t, "second DeleteTask", err, commonops.ENOTFOUND)
		// A new task under the same id starts with no history.
		again, ch := newTask(t, tenantA, at(4), commonops.CreateInput{})
		again.ID = tk.ID
		if _, err := s.CreateTask(ctx, again, ch, nil); err != nil {
			t.Fatalf("CreateTask with the deleted id: %v", err)
		}
		if _, total, err := s.ListLogs(ctx, commonops.LogFilter{TenantID: tenantA, TaskID: tk.ID}); err != nil || total != 0 {
			t.Fatalf("logs after delete: got %d (err %v), want 0", total, err)
		}
		if evs := events(t, s, tenantA, tk.ID); !slices.Equal(evs, []string{commonops.EventCreated}) {
			t.Fatalf("events after delete: got %v, want only the new created", evs)
		}
	}},
	{"UnknownIsNotFound", func(t *testing.T, s store.Store) {
		_, err := s.DeleteTask(context.Background(), tenantA, uuid.NewString())
		wantCode(t, "DeleteTask of an unknown id", err, commonops.ENOTFOUND)
	}},
}

// report is ApplyProgress of p by attempt at now, as a worker's report.
func report(p commonops.Progress, attempt int, now time.Time) func(*commonops.Task) (commonops.Change, error) {
	p.Attempt = &attempt
	return func(x *commonops.Task) (commonops.Change, error) { return x.ApplyProgress(p, time.Minute, 0, now) }
}

var updateFromTests = []test{
	{"CurrentKnownIsWritten", func(t *testing.T, s store.Store) {
		known := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))
		drain(t, s)
		got, err := s.UpdateTaskFrom(context.Background(), known, report(commonops.Progress{Progress: ptr(40.0), Message: ptr("halfway")}, 1, at(2)))
		if err != nil {
			t.Fatalf("UpdateTaskFrom: %v", err)
		}
		if got.Progress != 40 || got.Message == nil || *got.Message != "halfway" || got.Version != known.Version+1 {
			t.Fatalf("report: got progress %v message %v version %d, want 40, halfway, %d", got.Progress, got.Message, got.Version, known.Version+1)
		}
		equalTask(t, "stored after the report", get(t, s, tenantA, known.ID), got)
		done, err := s.UpdateTaskFrom(context.Background(), got, report(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, 1, at(3)))
		if err != nil {
			t.Fatalf("UpdateTaskFrom completing: %v", err)
		}
		equalTask(t, "stored after completing", get(t, s, tenantA, known.ID), done)
		if done.Status != commonops.StatusCompleted {
			t.Fatalf("status: got %s, want completed", done.Status)
		}
		if evs := events(t, s, tenantA, known.ID); evs[len(evs)-1] != commonops.EventCompleted {
			t.Fatalf("events: got %v, want completed last", evs)
		}
		if got := topics(drain(t, s)); !slices.Contains(got, commonops.TopicCompleted) {
			t.Fatalf("outbox: got %v, want %s", got, commonops.TopicCompleted)
		}
	}},
	{"StaleKnownAppliesToStored", func(t *testing.T, s store.Store) {
		known := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))
		// Another writer moves the task on: the report must not undo it.
		update(t, s, tenantA, known.ID, report(commonops.Progress{Message: ptr("from elsewhere")}, 1, at(2)))
		got, err := s.UpdateTaskFrom(context.Background(), known, report(commonops.Progress{Progress: ptr(50.0)}, 1, at(3)))
		if err != nil {
			t.Fatalf("UpdateTaskFrom: %v", err)
		}
		if got.Progress != 50 || got.Message == nil || *got.Message != "from elsewhere" || got.Version != known.Version+2 {
			t.Fatalf("got progress %v message %v version %d, want 50, from elsewhere, %d", got.Progress, got.Message, got.Version, known.Version+2)
		}
		equalTask(t, "stored", get(t, s, tenantA, known.ID), got)
	}},
	{"StaleKnownRefusedByStored", func(t *testing.T, s store.Store) {
		cancelled := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))
		cancel(t, s, cancelled, at(2))
		before := get(t, s, tenantA, cancelled.ID)
		_, err := s.UpdateTaskFrom(context.Background(), cancelled, report(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, 1, at(3)))
		wantCode(t, "completing a cancelled task from its processing copy", err, commonops.ECONFLICT)
		equalTask(t, "cancelled task unchanged", get(t, s, tenantA, cancelled.ID), before)

		// A zombie of attempt 1 reporting after attempt 2 took the task.
		zombie := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{MaxRetries: ptr(3)}), at(1))
		update(t, s, tenantA, zombie.ID, func(x *commonops.Task) (commonops.Change, error) {
			x.LeaseExpiresAt = ptr(at(5))
			return x.ExpireLease(0, at(5))
		})
		claim(t, s, zombie, at(6))
		before = get(t, s, tenantA, zombie.ID)
		_, err = s.UpdateTaskFrom(context.Background(), zombie, report(commonops.Progress{Progress: ptr(90.0)}, 1, at(7)))
		wantCode(t, "report of a stale attempt", err, commonops.ECONFLICT)
		equalTask(t, "retried task unchanged", get(t, s, tenantA, zombie.ID), before)
	}},
}
