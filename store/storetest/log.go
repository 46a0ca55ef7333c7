package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

var logTests = []test{
	{"AppendAndList", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tk := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))
		in := []commonops.LogEntry{
			{Level: commonops.LogInfo, Message: "start", Details: json.RawMessage(`{"rows": 10}`), CreatedAt: at(2)},
			{Level: commonops.LogWarn, Message: "odd row", CreatedAt: at(3)},
			{Level: commonops.LogError, Message: "bad row", Details: json.RawMessage(`{"row": 7, "why": "x"}`), CreatedAt: at(4)},
		}
		if err := s.AppendLogs(ctx, tenantA, tk.ID, ptr(1), in); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
		got, total, err := s.ListLogs(ctx, commonops.LogFilter{TenantID: tenantA, TaskID: tk.ID})
		if err != nil || total != 3 || len(got) != 3 {
			t.Fatalf("ListLogs: got %d of %d, err %v; want 3 of 3", len(got), total, err)
		}
		for i, l := range got {
			w := in[i]
			if l.Level != w.Level || l.Message != w.Message || !l.CreatedAt.Equal(w.CreatedAt) || l.Attempt != 1 || l.ID == 0 {
				t.Errorf("log %d: got %+v, want %+v at attempt 1 with an id", i, l, w)
			}
			if (len(w.Details) == 0) != (len(l.Details) == 0 || string(l.Details) == "null") || len(w.Details) > 0 && !jsonEqual(t, l.Details, w.Details) {
				t.Errorf("log %d details: got %s, want %s", i, l.Details, w.Details)
			}
			if i > 0 && l.ID <= got[i-1].ID {
				t.Errorf("log ids: got %d after %d, want increasing", l.ID, got[i-1].ID)
			}
		}
	}},
	{"LevelFilterAndPaging", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
		var in []commonops.LogEntry
		for i := range 7 {
			lvl := commonops.LogInfo
			if i%2 == 1 {
				lvl = commonops.LogError
			}
			in = append(in, commonops.LogEntry{Level: lvl, Message: fmt.Sprintf("line %d", i), CreatedAt: at(i)})
		}
		if err := s.AppendLogs(ctx, tenantA, tk.ID, nil, in); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
		msgs := func(logs []commonops.LogEntry) []string {
			out := []string{}
			for _, l := range logs {
				out = append(out, l.Message)
			}
			return out
		}
		cases := []struct {
			filter    commonops.LogFilter
			want      []string
			wantTotal int
		}{
			{commonops.LogFilter{Level: commonops.LogError}, []string{"line 1", "line 3", "line 5"}, 3},
			{commonops.LogFilter{Level: commonops.LogDebug}, []string{}, 0},
			{commonops.LogFilter{Page: 2, PageSize: 3}, []string{"line 3", "line 4", "line 5"}, 7},
			{commonops.LogFilter{Page: 3, PageSize: 3}, []string{"line 6"}, 7},
			{commonops.LogFilter{Level: commonops.LogInfo, Page: 2, PageSize: 2}, []string{"line 4", "line 6"}, 4},
			{commonops.LogFilter{Page: 9, PageSize: 3}, []string{}, 7},
		}
		for _, c := range cases {
			c.filter.TenantID, c.filter.TaskID = tenantA, tk.ID
			got, total, err := s.ListLogs(ctx, c.filter)
			if err != nil {
				t.Fatalf("ListLogs %+v: %v", c.filter, err)
			}
			if g := msgs(got); !slices.Equal(g, c.want) || total != c.wantTotal {
				t.Errorf("ListLogs %+v: got %v of %d, want %v of %d", c.filter, g, total, c.want, c.wantTotal)
			}
		}
	}},
	{"StaleAttemptWritesNothing", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tk := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{}), at(1))
		err := s.AppendLogs(ctx, tenantA, tk.ID, ptr(2), []commonops.LogEntry{
			{Level: commonops.LogInfo, Message: "from the future", CreatedAt: at(2)},
		})
		wantCode(t, "AppendLogs with attempt 2 on attempt 1", err, commonops.ECONFLICT)
		err = s.AppendLogs(ctx, tenantA, tk.ID, ptr(0), []commonops.LogEntry{
			{Level: commonops.LogInfo, Message: "a", CreatedAt: at(2)},
			{Level: commonops.LogInfo, Message: "b", CreatedAt: at(2)},
		})
		wantCode(t, "AppendLogs with attempt 0 on attempt 1", err, commonops.ECONFLICT)
		if _, total, err := s.ListLogs(ctx, commonops.LogFilter{TenantID: tenantA, TaskID: tk.ID}); err != nil || total != 0 {
			t.Fatalf("logs after stale appends: got %d (err %v), want 0", total, err)
		}
		if err := s.AppendLogs(ctx, tenantA, tk.ID, ptr(1), []commonops.LogEntry{{Level: commonops.LogInfo, Message: "ok", CreatedAt: at(3)}}); err != nil {
			t.Fatalf("AppendLogs with the current attempt: %v", err)
		}
	}},
	{"UnknownTaskIsNotFound", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		id := uuid.NewString()
		err := s.AppendLogs(ctx, tenantA, id, nil, []commonops.LogEntry{{Level: commonops.LogInfo, Message: "x", CreatedAt: at(0)}})
		wantCode(t, "AppendLogs to an unknown task", err, commonops.ENOTFOUND)
		_, _, err = s.ListLogs(ctx, commonops.LogFilter{TenantID: tenantA, TaskID: id})
		wantCode(t, "ListLogs of an unknown task", err, commonops.ENOTFOUND)
	}},
}

var eventTests = []test{
	{"AfterIDAndLimit", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		tk := create(t, s, tenantA, at(0), commonops.CreateInput{MaxRetries: ptr(5)})
		cancel(t, s, tk, at(1))
		update(t, s, tenantA, tk.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Retry(false, at(2)) })
		cancel(t, s, tk, at(3))
		all, err := s.ListEvents(ctx, tenantA, tk.ID, 0, 0)
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		want := []string{commonops.EventCreated, commonops.EventCancelled, commonops.EventRetried, commonops.EventCancelled}
		if got := events(t, s, tenantA, tk.ID); !slices.Equal(got, want) {
			t.Fatalf("events: got %v, want %v", got, want)
		}
		for i, e := range all {
			if e.TaskID != tk.ID || !e.CreatedAt.Equal(at(i)) {
				t.Errorf("event %d: got task %s at %v, want %s at %v", i, e.TaskID, e.CreatedAt, tk.ID, at(i))
			}
		}
		if !jsonEqual(t, all[2].EventData, []byte(`{"from":"cancelled","to":"pending","retryCount":1,"force":false}`)) {
			t.Errorf("retried event data: got %s", all[2].EventData)
		}
		after, err := s.ListEvents(ctx, tenantA, tk.ID, all[1].ID, 0)
		if err != nil || len(after) != 2 || after[0].ID != all[2].ID {
			t.Fatalf("ListEvents after %d: got %v (err %v), want the last two", all[1].ID, after, err)
		}
		limited, err := s.ListEvents(ctx, tenantA, tk.ID, all[0].ID, 2)
		if err != nil || len(limited) != 2 || limited[0].ID != all[1].ID || limited[1].ID != all[2].ID {
			t.Fatalf("ListEvents after %d limit 2: got %v (err %v), want events 2 and 3", all[0].ID, limited, err)
		}
		if none, err := s.ListEvents(ctx, tenantA, tk.ID, all[3].ID, 0); err != nil || len(none) != 0 {
			t.Fatalf("ListEvents after the last: got %v (err %v), want none", none, err)
		}
	}},
	{"OnlyTheTasksOwn", func(t *testing.T, s store.Store) {
		one := create(t, s, tenantA, at(0), commonops.CreateInput{})
		two := create(t, s, tenantA, at(1), commonops.CreateInput{})
		cancel(t, s, two, at(2))
		if got := events(t, s, tenantA, one.ID); !slices.Equal(got, []string{commonops.EventCreated}) {
			t.Fatalf("events of one: got %v, want [created]", got)
		}
	}},
	{"UnknownTaskIsNotFound", func(t *testing.T, s store.Store) {
		_, err := s.ListEvents(context.Background(), tenantA, uuid.NewString(), 0, 0)
		wantCode(t, "ListEvents of an unknown task", err, commonops.ENOTFOUND)
	}},
}
