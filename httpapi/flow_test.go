package httpapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// TestFlowControls pauses, resumes and limits a task type through the API
// and checks what creates and claims then see, and that bad input changes
// nothing.
func TestFlowControls(t *testing.T) {
	t.Parallel()
	eachStore(t, testFlowControls)
}

func testFlowControls(t *testing.T, st store.Store) {
	e := newEnv(t, st)
	flows := prefix + "/flow-controls"
	first := e.create(simple)

	var fc commonops.FlowControl
	e.do("POST", flows+"/import/pause", nil).want(t, http.StatusOK).decode(t, &fc)
	if !fc.Paused || fc.TaskType != "import" || fc.TenantID != commonops.DefaultTenant {
		t.Fatalf("pause: got %+v, want import paused for %s", fc, commonops.DefaultTenant)
	}
	var c operations.Created
	e.do("POST", tasksPath, simple).want(t, http.StatusCreated).decode(t, &c)
	if !c.QueuePaused {
		t.Fatalf("create while paused: got queuePaused false, want true")
	}
	if p := e.do("POST", taskPath(first.ID, "/claim"), map[string]any{"workerId": "w1"}).want(t, http.StatusConflict).problem(t); !strings.Contains(p.Detail, "paused") {
		t.Fatalf("claim while paused: got %q, want it to say paused", p.Detail)
	}

	list := func() []byte { return e.do("GET", flows+"?scope=all", nil).want(t, http.StatusOK).body }
	before := list()
	bad := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"limit 0", "PUT", flows + "/import", map[string]any{"limit": 0}, http.StatusUnprocessableEntity, "limit"},
		{"negative limit", "PUT", flows + "/import", map[string]any{"limit": -3}, http.StatusUnprocessableEntity, "limit"},
		{"limit over the maximum", "PUT", flows + "/import", map[string]any{"limit": operations.FlowLimitMax + 1}, http.StatusUnprocessableEntity, "limit"},
		{"unknown field", "PUT", flows + "/import", map[string]any{"limt": 2}, http.StatusUnprocessableEntity, ""},
		{"pause of an unknown type", "POST", flows + "/nothing-of-this/pause", nil, http.StatusUnprocessableEntity, "taskType"},
		{"limit of an unknown type", "PUT", flows + "/nothing-of-this", map[string]any{"limit": 2}, http.StatusUnprocessableEntity, "taskType"},
		{"bad scope", "POST", flows + "/import/resume?scope=everyone", nil, http.StatusUnprocessableEntity, "scope"},
	}
	for _, b := range bad {
		p := e.do(b.method, b.path, b.body).want(t, b.status).problem(t)
		if b.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != b.field) {
			t.Errorf("%s: got problem %+v, want it to name %s", b.name, p, b.field)
		}
	}
	if after := list(); !bytes.Equal(before, after) {
		t.Fatalf("bad input changed the controls: got %s, want %s", after, before)
	}

	e.do("POST", flows+"/import/resume", nil).want(t, http.StatusOK)
	e.claim(first.ID)
	fc = commonops.FlowControl{}
	e.do("PUT", flows+"/import?scope=all", map[string]any{"limit": 1}).want(t, http.StatusOK).decode(t, &fc)
	if fc.Limit != 1 || fc.TenantID != "" {
		t.Fatalf("limit for all tenants: got %+v, want limit 1 and no tenant", fc)
	}
	if p := e.do("POST", taskPath(c.Task.ID, "/claim"), map[string]any{"workerId": "w1"}).want(t, http.StatusConflict).problem(t); !strings.Contains(p.Detail, "limit") {
		t.Fatalf("claim at the limit: got %q, want it to say limit", p.Detail)
	}
	var got struct {
		FlowControls []commonops.FlowControl `json:"flowControls"`
	}
	e.do("GET", flows, nil).want(t, http.StatusOK).decode(t, &got)
	if len(got.FlowControls) != 1 || got.FlowControls[0].Limit != 1 || got.FlowControls[0].Paused {
		t.Fatalf("controls after resume and limit: got %+v, want only import's limit of 1", got.FlowControls)
	}
	e.do("PUT", flows+"/import?scope=all", map[string]any{"limit": nil}).want(t, http.StatusOK)
	e.claim(c.Task.ID)
}
