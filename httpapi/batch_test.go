package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

func TestCreateBatch(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		body := `{"tasks": [
			{"taskType": "import", "entityType": "product", "params": {"n": 0}},
			{"entityType": "product"},
			42,
			{"taskType": "import", "entityType": "product", "fileName": "in.csv"},
			{"taskType": "import", "entityType": "product", "idempotencyKey": "k-1"},
			{"taskType": "export", "entityType": "order", "idempotencyKey": "k-1"},
			{"taskType": "import", "entityType": "product", "bogus": true}
		]}`
		var got batchAnswer
		e.do("POST", tasksPath+"/batch", body).want(t, http.StatusOK).decode(t, &got)
		wantStatus := []int{201, 422, 400, 201, 201, 422, 422}
		if len(got.Results) != len(wantStatus) {
			t.Fatalf("results: got %d, want %d: %+v", len(got.Results), len(wantStatus), got)
		}
		for n, r := range got.Results {
			if r.Status != wantStatus[n] {
				t.Fatalf("item %d: got status %d, want %d: %+v", n, r.Status, wantStatus[n], r)
			}
			switch {
			case r.Status == 201 && (r.ID == "" || r.Problem != nil):
				t.Fatalf("item %d: got id %q problem %+v, want an id and no problem", n, r.ID, r.Problem)
			case r.Status != 201 && (r.ID != "" || r.Problem == nil || r.Problem.Status != r.Status):
				t.Fatalf("item %d: got id %q problem %+v, want a problem of status %d", n, r.ID, r.Problem, r.Status)
			}
		}
		if got.Created != 3 || got.Failed != 4 {
			t.Fatalf("counts: got created %d failed %d, want 3 and 4", got.Created, got.Failed)
		}
		if p := got.Results[1].Problem; len(p.Errors) != 1 || p.Errors[0].Field != "taskType" {
			t.Fatalf("item 1 problem: got %+v, want one error on taskType", p)
		}
		if r := got.Results[3]; r.UploadURL == nil || r.UploadExpiresAt == nil {
			t.Fatalf("item 3 (with a file): got %+v, want an upload URL", r)
		}
		first := e.do("GET", taskPath(got.Results[0].ID), nil).want(t, http.StatusOK).task(t)
		if string(first.Params) != `{"n":0}` || first.Status != commonops.StatusPending {
			t.Fatalf("item 0's task: got params %s status %s, want {\"n\":0} pending", first.Params, first.Status)
		}
		withFile := e.do("GET", taskPath(got.Results[3].ID), nil).want(t, http.StatusOK).task(t)
		if withFile.UploadStatus != commonops.UploadAwaiting {
			t.Fatalf("item 3's task: got upload status %s, want awaiting", withFile.UploadStatus)
		}

		// Sent again: the keyed item answers its task again, the others are
		// new; the key with another item is that item's problem.
		var again batchAnswer
		e.do("POST", tasksPath+"/batch", `{"tasks": [
			{"taskType": "import", "entityType": "product", "idempotencyKey": "k-1"},
			{"taskType": "import", "entityType": "product", "priority": 5, "idempotencyKey": "k-1"}
		]}`).want(t, http.StatusOK).decode(t, &again)
		if r := again.Results[0]; r.Status != 201 || !r.Replayed || r.ID != got.Results[4].ID {
			t.Fatalf("replayed item: got %+v, want 201 replayed with id %s", r, got.Results[4].ID)
		}
		if r := again.Results[1]; r.Status != 422 {
			t.Fatalf("item repeating the batch's key: got %+v, want 422", r)
		}
		var page listPage
		e.do("GET", tasksPath, nil).want(t, http.StatusOK).decode(t, &page)
		if page.Total != 3 {
			t.Fatalf("tasks: got %d, want 3", page.Total)
		}
	})
}

func TestCreateBatchKeyUsedWithAnotherItem(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e.do("POST", tasksPath+"/batch", `{"tasks": [{"taskType": "import", "entityType": "product", "idempotencyKey": "k"}]}`).want(t, http.StatusOK)
	var got batchAnswer
	e.do("POST", tasksPath+"/batch", `{"tasks": [{"taskType": "import", "entityType": "order", "idempotencyKey": "k"}]}`).want(t, http.StatusOK).decode(t, &got)
	if r := got.Results[0]; r.Status != 422 || r.Problem == nil || len(r.Problem.Errors) != 1 || r.Problem.Errors[0].Field != "idempotencyKey" {
		t.Fatalf("got %+v, want 422 on idempotencyKey", r)
	}
}

func TestCreateBatchRefused(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	tooMany := `{"tasks": [` + strings.TrimSuffix(strings.Repeat(`{"taskType": "import", "entityType": "product"},`, 1001), ",") + `]}`
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"NotJSON", `{"tasks": [`, http.StatusBadRequest},
		{"NotAnObject", `[]`, http.StatusBadRequest},
		{"NoTasks", `{}`, http.StatusUnprocessableEntity},
		{"Empty", `{"tasks": []}`, http.StatusUnprocessableEntity},
		{"UnknownField", `{"tasks": [], "more": 1}`, http.StatusUnprocessableEntity},
		{"OverTheLimit", tooMany, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.as(t).do("POST", tasksPath+"/batch", tc.body).want(t, tc.status).problem(t)
		})
	}
	var page listPage
	e.do("GET", tasksPath, nil).want(t, http.StatusOK).decode(t, &page)
	if page.Total != 0 {
		t.Fatalf("tasks after refused batches: got %d, want 0", page.Total)
	}
	// A batch of exactly the limit is taken.
	var got batchAnswer
	e.do("POST", tasksPath+"/batch", strings.Replace(tooMany, `{"taskType": "import", "entityType": "product"},`, "", 1)).want(t, http.StatusOK).decode(t, &got)
	if got.Created != 1000 {
		t.Fatalf("batch of 1000: got %d created (%d failed), want 1000", got.Created, got.Failed)
	}
}
