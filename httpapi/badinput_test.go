package httpapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/commonops/commonops/store"
)

// TestBadInput sends every kind of bad input of issue 2 and checks that each
// gets its precise problem and that no task, event or log changed.
func TestBadInput(t *testing.T) {
	t.Parallel()
	eachStore(t, testBadInput)
}

func testBadInput(t *testing.T, st store.Store) {
	e := newEnv(t, st)
	pending := e.create(simple)
	running := e.create(simple)
	e.claim(running.ID)
	e.do("PATCH", taskPath(running.ID, "/progress"), map[string]any{"processedItems": 5}).want(t, http.StatusOK)
	done := e.create(simple)
	e.claim(done.ID)
	e.do("PATCH", taskPath(done.ID, "/progress"), map[string]any{"status": "completed"}).want(t, http.StatusOK)
	cancelled := e.create(simple)
	e.do("POST", taskPath(cancelled.ID, "/cancel"), nil).want(t, http.StatusOK)
	e.create(simple, "Idempotency-Key", "key-1")
	ids := []string{pending.ID, running.ID, done.ID, cancelled.ID}

	snapshot := func() []byte {
		var b bytes.Buffer
		b.Write(e.do("GET", tasksPath+"?pageSize=1000", nil).want(t, http.StatusOK).body)
		for _, id := range ids {
			b.Write(e.do("GET", taskPath(id, "/events"), nil).want(t, http.StatusOK).body)
			b.Write(e.do("GET", taskPath(id, "/logs"), nil).want(t, http.StatusOK).body)
		}
		return b.Bytes()
	}
	huge := `{"taskType":"import","entityType":"product","params":{"pad":"` + strings.Repeat("x", 50<<20) + `"}}`
	long := strings.Repeat("a", 65)
	unknownID := "6f1d2c3b-4a59-4c55-9a3e-0b7e9d5c2f0a"

	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		status  int
		slug    string // problem type after problemBase
		field   string // a field the problem's errors must name ("" for none)
		detail  string // a substring of the detail
	}{
		{"malformed JSON", "POST", tasksPath, `{"taskType": "import",`, nil, 400, "malformed", "", "ends in the middle"},
		{"syntax error", "POST", tasksPath, `{"taskType": import}`, nil, 400, "malformed", "", "not valid JSON"},
		{"empty body", "POST", tasksPath, ``, nil, 400, "malformed", "", "empty"},
		{"not an object", "POST", tasksPath, `["import"]`, nil, 400, "malformed", "", "must be a JSON object"},
		{"trailing data", "POST", tasksPath, `{"taskType":"import","entityType":"product"} {"taskType":"x"}`, nil, 400, "malformed", "", "single JSON object"},
		{"wrong type string", "POST", tasksPath, `{"taskType": 5, "entityType": "product"}`, nil, 422, "invalid", "taskType", "must be a string"},
		{"wrong type integer", "POST", tasksPath, `{"taskType":"import","entityType":"product","priority":"high"}`, nil, 422, "invalid", "priority", "must be an integer"},
		{"fraction for integer", "POST", tasksPath, `{"taskType":"import","entityType":"product","fileName":"a.csv","fileSize":1.5}`, nil, 422, "invalid", "fileSize", "1.5"},
		{"bad scheduledAt", "POST", tasksPath, `{"taskType":"import","entityType":"product","scheduledAt":"tomorrow"}`, nil, 422, "invalid", "scheduledAt", "RFC 3339"},
		{"scheduledAt not a string", "POST", tasksPath, `{"taskType":"import","entityType":"product","scheduledAt":20300101}`, nil, 422, "invalid", "scheduledAt", "not 20300101"},
		{"params not an object", "POST", tasksPath, `{"taskType":"import","entityType":"product","params":[1]}`, nil, 422, "invalid", "params", "object"},
		{"missing taskType", "POST", tasksPath, `{"entityType":"product"}`, nil, 422, "invalid", "taskType", "required"},
		{"missing entityType", "POST", tasksPath, `{"taskType":"import"}`, nil, 422, "invalid", "entityType", "required"},
		{"over-long taskType", "POST", tasksPath, map[string]any{"taskType": long, "entityType": "product"}, nil, 422, "invalid", "taskType", "at most 64"},
		{"over-long requestedBy", "POST", tasksPath, map[string]any{"taskType": "import", "entityType": "product", "requestedBy": strings.Repeat("b", 257)}, nil, 422, "invalid", "requestedBy", "at most"},
		{"negative fileSize", "POST", tasksPath, map[string]any{"taskType": "import", "entityType": "product", "fileName": "a.csv", "fileSize": -1}, nil, 422, "invalid", "fileSize", ""},
		{"fileSize over the limit", "POST", tasksPath, map[string]any{"taskType": "import", "entityType": "product", "fileName": "a.csv", "fileSize": int64(6) << 30}, nil, 413, "too-large", "", "over the limit"},
		{"50 MB body", "POST", tasksPath, huge, nil, 413, "too-large", "", "limit"},
		{"unknown field", "POST", tasksPath, `{"taskType":"import","entityType":"product","colour":"red"}`, nil, 422, "invalid", "colour", "not a known field"},
		{"idempotency key with another body", "POST", tasksPath, map[string]any{"taskType": "export", "entityType": "product"}, []string{"Idempotency-Key", "key-1"}, 422, "invalid", "Idempotency-Key", "different request body"},
		{"over-long tenant", "POST", tasksPath, simple, []string{"X-Tenant-Id", strings.Repeat("t", 129)}, 422, "invalid", "X-Tenant-Id", "at most 128"},
		{"unprintable user", "GET", tasksPath, nil, []string{"X-User-Id", "bob\u200b"}, 422, "invalid", "X-User-Id", "printable"},

		{"invalid UUID get", "GET", taskPath("not-a-uuid"), nil, nil, 400, "malformed", "id", "not a UUID"},
		{"invalid UUID cancel", "POST", taskPath("123", "/cancel"), nil, nil, 400, "malformed", "id", "not a UUID"},
		{"invalid UUID progress", "PATCH", taskPath("x'; drop table tasks", "/progress"), `{}`, nil, 400, "malformed", "id", "not a UUID"},
		{"unknown id", "GET", taskPath(unknownID), nil, nil, 404, "not-found", "", ""},
		{"unknown id cancel", "POST", taskPath(unknownID, "/cancel"), nil, nil, 404, "not-found", "", ""},
		{"unknown id progress", "PATCH", taskPath(unknownID, "/progress"), `{"processedItems":1}`, nil, 404, "not-found", "", ""},

		{"invalid status filter", "GET", tasksPath + "?status=pending,running", nil, nil, 422, "invalid", "status", "scheduled, pending, processing, completed, failed, cancelled"},
		{"pageSize 100000", "GET", tasksPath + "?pageSize=100000", nil, nil, 422, "invalid", "pageSize", "1 to 1000"},
		{"page 0", "GET", tasksPath + "?page=0", nil, nil, 422, "invalid", "page", ""},
		{"bad sort", "GET", tasksPath + "?sort=name", nil, nil, 422, "invalid", "sort", "createdAt"},
		{"bad startDate", "GET", tasksPath + "?startDate=yesterday", nil, nil, 422, "invalid", "startDate", "RFC 3339"},
		{"end before start", "GET", tasksPath + "?startDate=2024-05-02&endDate=2024-05-01", nil, nil, 422, "invalid", "endDate", ""},

		{"negative counts", "PATCH", taskPath(running.ID, "/progress"), `{"processedItems":-1,"failedItems":-2}`, nil, 422, "invalid", "failedItems", "invalid"},
		{"progress over 100", "PATCH", taskPath(running.ID, "/progress"), `{"progress":101}`, nil, 422, "invalid", "progress", "between 0 and 100"},
		{"processedItems backwards", "PATCH", taskPath(running.ID, "/progress"), `{"processedItems":4}`, nil, 422, "invalid", "processedItems", "backwards"},
		{"bad progress status", "PATCH", taskPath(running.ID, "/progress"), `{"status":"cancelled"}`, nil, 422, "invalid", "status", ""},
		{"unknown progress field", "PATCH", taskPath(running.ID, "/progress"), `{"percent":5}`, nil, 422, "invalid", "percent", "not a known field"},
		{"progress on a completed task", "PATCH", taskPath(done.ID, "/progress"), `{"processedItems":10}`, nil, 409, "conflict", "", "completed"},
		{"cancel of a cancelled task", "POST", taskPath(cancelled.ID, "/cancel"), nil, nil, 409, "conflict", "", "already cancelled"},
		{"retry of a pending task", "POST", taskPath(pending.ID, "/retry"), nil, nil, 409, "conflict", "", "pending"},
		{"retry with a bad force", "POST", taskPath(cancelled.ID, "/retry?force=maybe"), nil, nil, 422, "invalid", "force", ""},
		{"delete of a running task", "DELETE", taskPath(running.ID), nil, nil, 409, "conflict", "", ""},
		{"claim of a running task", "POST", taskPath(running.ID, "/claim"), `{"workerId":"w2"}`, nil, 409, "conflict", "", "not claimable"},
		{"claim without workerId", "POST", taskPath(pending.ID, "/claim"), `{}`, nil, 422, "invalid", "workerId", "required"},
		{"claim with a huge lease", "POST", taskPath(pending.ID, "/claim"), `{"workerId":"w2","leaseSeconds":99999}`, nil, 422, "invalid", "leaseSeconds", "3600"},
		{"log with a bad level", "POST", taskPath(running.ID, "/logs"), `{"logs":[{"level":"loud","message":"x"}]}`, nil, 422, "invalid", "logs[0].level", ""},
		{"no log lines", "POST", taskPath(running.ID, "/logs"), `{"logs":[]}`, nil, 422, "invalid", "logs", ""},
		{"log of a stale attempt", "POST", taskPath(running.ID, "/logs"), `{"attempt":2,"logs":[{"message":"x"}]}`, nil, 409, "conflict", "", ""},
		{"logs filter with a bad level", "GET", taskPath(running.ID, "/logs?level=loud"), nil, nil, 422, "invalid", "level", ""},
		{"download of an unknown file", "GET", taskPath(done.ID, "/download?file=secret"), nil, nil, 422, "invalid", "file", ""},
		{"download of no output", "GET", taskPath(done.ID, "/download"), nil, nil, 404, "not-found", "", "no output"},
		{"output URL without a name", "POST", taskPath(running.ID, "/output-url"), `{"contentType":"text/csv"}`, nil, 422, "invalid", "fileName", "required"},
		{"upload-complete without a file", "POST", taskPath(pending.ID, "/upload-complete"), nil, nil, 409, "conflict", "", "no input file"},
		{"unknown route", "GET", prefix + "/nope", nil, nil, 404, "not-found", "", "no route"},
		{"wrong method", "PUT", taskPath(pending.ID), `{}`, nil, 405, "method-not-allowed", "", "allowed: "},
	}
	before := snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.as(t)
			r := e.do(c.method, c.path, c.body, c.headers...).want(t, c.status)
			p := r.problem(t)
			if p.Type != problemBase+c.slug {
				t.Errorf("got type %q, want %q", p.Type, problemBase+c.slug)
			}
			if p.Title == "" || p.Detail == "" || p.RequestID == "" {
				t.Errorf("got title %q detail %q requestId %q, want all set", p.Title, p.Detail, p.RequestID)
			}
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("got detail %q, want it to contain %q", p.Detail, c.detail)
			}
			if c.field != "" && !hasField(p, c.field) {
				t.Errorf("got errors %+v, want one naming %q", p.Errors, c.field)
			}
			if c.status == http.StatusConflict && p.CurrentStatus == nil && c.slug == "conflict" {
				t.Errorf("got no currentStatus in a 409: %s", r.body)
			}
			if after := snapshot(); !bytes.Equal(after, before) {
				t.Fatalf("data changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func hasField(p problem, field string) bool {
	for _, f := range p.Errors {
		if f.Field == field {
			return true
		}
	}
	return false
}
