package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

const schedulesPath = prefix + "/schedules"

// TestSchedulesAPI walks a schedule's life over HTTP on both stores:
// create (with its next five runs), get, list, update, pause, resume,
// delete.
func TestSchedulesAPI(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st).as(t)
		body := map[string]any{
			"cron": "0 2 * * *", "timeZone": "America/New_York",
			"template": map[string]any{"taskType": "export", "entityType": "product", "params": map[string]any{"format": "csv"}, "priority": 5, "timeoutSeconds": 600},
		}
		r := e.do("POST", schedulesPath, body).want(t, http.StatusCreated)
		var v operations.ScheduleView
		r.decode(t, &v)
		if r.header.Get("Location") != schedulesPath+"/"+v.ID || len(v.NextRuns) != 5 || v.Overlap != "skip" || v.MissedRuns != "skip" || v.Paused {
			t.Fatalf("created: got %s (Location %q), want five next runs, skip policies, not paused", r.body, r.header.Get("Location"))
		}
		ny, _ := time.LoadLocation("America/New_York")
		for _, run := range v.NextRuns {
			if l := run.In(ny); l.Hour() != 2 || l.Minute() != 0 {
				t.Fatalf("next run %s is %s in New York, want 02:00", run, l)
			}
		}
		path := schedulesPath + "/" + v.ID
		e.do("GET", path, nil).want(t, http.StatusOK).decode(t, &v)
		if len(v.NextRuns) != 5 || *v.Template.Priority != 5 || v.Template.TimeoutSeconds == nil || *v.Template.TimeoutSeconds != 600 {
			t.Fatalf("GET: got %+v, want five next runs and the template (priority 5, timeoutSeconds 600)", v)
		}
		var list scheduleList
		e.do("GET", schedulesPath+"?limit=1", nil).want(t, http.StatusOK).decode(t, &list)
		if len(list.Schedules) != 1 || list.NextCursor == nil || *list.NextCursor != v.ID {
			t.Fatalf("list: got %+v, want the schedule and a cursor", list)
		}
		e.do("GET", schedulesPath+"?after="+v.ID, nil).want(t, http.StatusOK).decode(t, &list)
		if len(list.Schedules) != 0 || list.NextCursor != nil {
			t.Fatalf("list after the last: got %+v, want an empty last page", list)
		}
		body["cron"], body["overlap"] = "@hourly", "allow"
		e.do("PUT", path, body).want(t, http.StatusOK).decode(t, &v)
		if v.Cron != "@hourly" || v.Overlap != "allow" || v.Version != 2 {
			t.Fatalf("PUT: got %+v, want @hourly, allow, version 2", v)
		}
		e.do("POST", path+"/pause", nil).want(t, http.StatusOK).decode(t, &v)
		if !v.Paused || v.NextRunAt != nil || len(v.NextRuns) != 0 {
			t.Fatalf("pause: got %+v, want paused without next runs", v)
		}
		e.do("POST", path+"/resume", nil).want(t, http.StatusOK).decode(t, &v)
		if v.Paused || v.NextRunAt == nil || len(v.NextRuns) != 5 {
			t.Fatalf("resume: got %+v, want a next run", v)
		}
		e.do("DELETE", path, nil).want(t, http.StatusNoContent)
		e.do("GET", path, nil).want(t, http.StatusNotFound)
	})
}

// TestSchedulesBadInput checks that each bad schedule is a precise 4xx
// problem and that nothing is stored.
func TestSchedulesBadInput(t *testing.T) {
	e := sqliteEnv(t).as(t)
	tpl := map[string]any{"taskType": "export", "entityType": "product"}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string
		detail string
	}{
		{"invalid cron", "POST", schedulesPath, map[string]any{"cron": "61 * * * *", "template": tpl}, 422, "cron", "is not a valid cron expression"},
		{"six fields", "POST", schedulesPath, map[string]any{"cron": "0 0 0 * * *", "template": tpl}, 422, "cron", "is not a valid cron expression"},
		{"@every", "POST", schedulesPath, map[string]any{"cron": "@every 1s", "template": tpl}, 422, "cron", "@every is not supported"},
		{"unknown zone", "POST", schedulesPath, map[string]any{"cron": "@daily", "timeZone": "Europe/Nowhere", "template": tpl}, 422, "timeZone", "is not an IANA time zone"},
		{"template refused", "POST", schedulesPath, map[string]any{"cron": "@daily", "template": map[string]any{"taskType": "has space", "entityType": "product"}}, 422, "template.taskType", "must start with a letter"},
		{"template without entity", "POST", schedulesPath, map[string]any{"cron": "@daily", "template": map[string]any{"taskType": "export"}}, 422, "template.entityType", "is required"},
		{"bad overlap", "POST", schedulesPath, map[string]any{"cron": "@daily", "overlap": "queue", "template": tpl}, 422, "overlap", "must be skip or allow"},
		{"unknown field", "POST", schedulesPath, map[string]any{"cron": "@daily", "template": tpl, "every": 5}, 422, "every", "is not a known field"},
		{"bad id", "GET", schedulesPath + "/nope", nil, 400, "scheduleId", "is not a UUID"},
		{"unknown id", "POST", schedulesPath + "/0b7e9d5c-2f0a-4c55-9a3e-6f1d2c3b4a59/pause", nil, 404, "", "not found"},
		{"bad limit", "GET", schedulesPath + "?limit=1000", nil, 422, "limit", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := e.do(tc.method, tc.path, tc.body).want(t, tc.status).problem(t)
			text := p.Detail
			for _, f := range p.Errors {
				text += " " + f.Field + ": " + f.Message
			}
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
				t.Fatalf("got errors %+v, want one on %s", p.Errors, tc.field)
			}
			if !strings.Contains(text, tc.detail) {
				t.Fatalf("got %q, want it to say %q", text, tc.detail)
			}
		})
	}
	var list scheduleList
	e.do("GET", schedulesPath, nil).want(t, http.StatusOK).decode(t, &list)
	if len(list.Schedules) != 0 {
		t.Fatalf("schedules after bad input: got %d, want none", len(list.Schedules))
	}
}
