package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve sends one request straight to the handler, without a network.
func (e *env) serve(method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	e.srv.Config.Handler.ServeHTTP(rec, req)
	return rec
}

var createSeeds = []string{
	`{"taskType":"import","entityType":"product"}`,
	`{"taskType":"import","entityType":"product","params":{"a":[1,2,{"b":null}]},"priority":-1000,"maxRetries":100}`,
	`{"taskType":"import","entityType":"product","fileName":"../../etc/passwd","fileSize":0,"contentType":"text/csv"}`,
	`{"taskType":"import","entityType":"product","fileName":"\u0000.csv","fileSize":9223372036854775807}`,
	`{"taskType":"import","entityType":"product","scheduledAt":"2030-01-01T00:00:00Z"}`,
	`{"taskType":"import","entityType":"product","scheduledAt":"9999-12-31T23:59:59Z"}`,
	`{"taskType":"import","entityType":"product","params":"x"}`,
	`{"taskType":1e400}`,
	`{"taskType":"` + strings.Repeat("a", 300) + `"}`,
	`{"requestedBy":"\ud800"}`,
	`{"taskType":"import","entityType":"product"}garbage`,
	`[]`, `null`, `""`, `{`, ``, `{"taskType":{"$ne":1}}`,
}

// FuzzCreate throws arbitrary bodies at POST /tasks: whatever comes in, the
// answer is never a 5xx and never a panic.
func FuzzCreate(f *testing.F) {
	for _, s := range createSeeds {
		f.Add(s)
	}
	e := sqliteEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		rec := e.serve("POST", tasksPath, body)
		if rec.Code >= 500 {
			t.Fatalf("POST %q: got %d, want < 500: %s", body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusCreated && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("POST %q: got %d with %q, want a problem", body, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}

var progressSeeds = []string{
	`{}`,
	`{"processedItems":1,"totalItems":10}`,
	`{"progress":50.5,"message":"half"}`,
	`{"progress":-0.0}`, `{"progress":1e308}`, `{"progress":"NaN"}`,
	`{"processedItems":-1}`, `{"totalItems":0,"processedItems":0}`,
	`{"attempt":0}`, `{"attempt":1,"status":"failed","errorMessage":"x","permanent":true}`,
	`{"status":"completed","outputFileName":"../../x"}`,
	`{"checkpoint":{"offset":10}}`, `{"checkpoint":"` + strings.Repeat("c", 70000) + `"}`,
	`{"status":"processing","processedItems":9223372036854775807}`,
	`{"message":"` + strings.Repeat("m", 5000) + `"}`,
	`{"unknown":1}`, `[1]`, ``, `{"processedItems":1}{}`,
}

// FuzzProgress throws arbitrary bodies at PATCH /tasks/{id}/progress of a
// processing task: never a 5xx, never a panic.
func FuzzProgress(f *testing.F) {
	for _, s := range progressSeeds {
		f.Add(s)
	}
	e := sqliteEnv(f)
	var id string
	fresh := func(e *env) {
		task := e.create(simple)
		e.claim(task.ID)
		id = task.ID
	}
	fresh(e)
	f.Fuzz(func(t *testing.T, body string) {
		rec := e.serve("PATCH", taskPath(id, "/progress"), body)
		if rec.Code >= 500 {
			t.Fatalf("PATCH %q: got %d, want < 500: %s", body, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), `"status":"processing"`) {
			fresh(e.as(t)) // the report ended the task: go on with a processing one
		}
	})
}
