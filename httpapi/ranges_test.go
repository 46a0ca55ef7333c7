package httpapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/commonops/commonops/store"
)

// TestIntegerRanges sends every integer field of every request body and
// query string a value out of its range, on both stores: each answer is a
// 422 naming the field and its allowed range, and nothing is written. On
// PostgreSQL an attempt past int4 once reached the database and came back as
// a 500.
func TestIntegerRanges(t *testing.T) {
	t.Parallel()
	eachStore(t, testIntegerRanges)
}

func testIntegerRanges(t *testing.T, st store.Store) {
	e := newEnv(t, st)
	pending := e.create(simple)
	running := e.create(simple)
	e.claim(running.ID)
	e.do("PATCH", taskPath(running.ID, "/progress"), map[string]any{"processedItems": 5}).want(t, http.StatusOK)
	ids := []string{pending.ID, running.ID}
	snapshot := func() []byte {
		var b bytes.Buffer
		b.Write(e.do("GET", tasksPath+"?pageSize=1000", nil).want(t, http.StatusOK).body)
		for _, id := range ids {
			b.Write(e.do("GET", taskPath(id, "/events"), nil).want(t, http.StatusOK).body)
			b.Write(e.do("GET", taskPath(id, "/logs"), nil).want(t, http.StatusOK).body)
		}
		return b.Bytes()
	}

	const (
		int4Over  = "2147483648"
		int8Over  = "9223372036854775808"
		int8Under = "-9223372036854775809"
		int8Range = "from 0 to 9223372036854775807"
		attempt   = "from 1 to 2147483647"
	)
	create := func(field, value string) string {
		return `{"taskType":"import","entityType":"product","fileName":"a.csv","` + field + `":` + value + `}`
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		field  string
		rng    string // the range the message must state
	}{
		{"logs attempt int4", "POST", taskPath(running.ID, "/logs"), `{"attempt":` + int4Over + `,"logs":[{"message":"x"}]}`, "attempt", attempt},
		{"logs attempt int8", "POST", taskPath(running.ID, "/logs"), `{"attempt":` + int8Over + `,"logs":[{"message":"x"}]}`, "attempt", attempt},
		{"logs attempt 0", "POST", taskPath(running.ID, "/logs"), `{"attempt":0,"logs":[{"message":"x"}]}`, "attempt", attempt},
		{"progress attempt int4", "PATCH", taskPath(running.ID, "/progress"), `{"attempt":` + int4Over + `}`, "attempt", attempt},
		{"progress attempt int8", "PATCH", taskPath(running.ID, "/progress"), `{"attempt":` + int8Over + `}`, "attempt", attempt},
		{"output-url attempt int4", "POST", taskPath(running.ID, "/output-url"), `{"fileName":"o.csv","attempt":` + int4Over + `}`, "attempt", attempt},
		{"output-url attempt negative", "POST", taskPath(running.ID, "/output-url"), `{"fileName":"o.csv","attempt":-1}`, "attempt", attempt},
		{"totalItems int8", "PATCH", taskPath(running.ID, "/progress"), `{"totalItems":` + int8Over + `}`, "totalItems", int8Range},
		{"totalItems negative", "PATCH", taskPath(running.ID, "/progress"), `{"totalItems":-1}`, "totalItems", int8Range},
		{"processedItems int8", "PATCH", taskPath(running.ID, "/progress"), `{"processedItems":` + int8Over + `}`, "processedItems", int8Range},
		{"successItems int8", "PATCH", taskPath(running.ID, "/progress"), `{"successItems":` + int8Over + `}`, "successItems", int8Range},
		{"failedItems int8", "PATCH", taskPath(running.ID, "/progress"), `{"failedItems":` + int8Under + `}`, "failedItems", int8Range},
		{"failedItems negative", "PATCH", taskPath(running.ID, "/progress"), `{"failedItems":-1}`, "failedItems", int8Range},
		{"leaseSeconds int4", "POST", taskPath(pending.ID, "/claim"), `{"workerId":"w","leaseSeconds":` + int4Over + `}`, "leaseSeconds", "from 0 to 3600"},
		{"leaseSeconds int8", "POST", taskPath(pending.ID, "/claim"), `{"workerId":"w","leaseSeconds":` + int8Over + `}`, "leaseSeconds", "from 0 to 3600"},
		{"leaseSeconds negative", "POST", taskPath(pending.ID, "/claim"), `{"workerId":"w","leaseSeconds":-1}`, "leaseSeconds", "from 0 to 3600"},
		{"priority int4", "POST", tasksPath, create("priority", int4Over), "priority", "from -1000 to 1000"},
		{"priority int8", "POST", tasksPath, create("priority", int8Under), "priority", "from -1000 to 1000"},
		{"maxRetries int4", "POST", tasksPath, create("maxRetries", int4Over), "maxRetries", "from 0 to 100"},
		{"maxRetries int8", "POST", tasksPath, create("maxRetries", int8Over), "maxRetries", "from 0 to 100"},
		{"fileSize int8", "POST", tasksPath, create("fileSize", int8Over), "fileSize", int8Range},
		{"fileSize negative", "POST", tasksPath, create("fileSize", "-1"), "fileSize", int8Range},
		{"list page", "GET", tasksPath + "?page=" + int4Over, "", "page", "from 1 to 2147483"},
		{"list pageSize", "GET", tasksPath + "?pageSize=" + int8Over, "", "pageSize", "from 1 to 1000"},
		{"logs page", "GET", taskPath(running.ID, "/logs?page="+int8Over), "", "page", "from 1 to 2147483"},
		{"logs pageSize", "GET", taskPath(running.ID, "/logs?pageSize=0"), "", "pageSize", "from 1 to 1000"},
		{"events after", "GET", taskPath(running.ID, "/events?after="+int8Over), "", "after", int8Range},
		{"events limit", "GET", taskPath(running.ID, "/events?limit="+int4Over), "", "limit", "from 1 to 1000"},
	}
	before := snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.as(t)
			var body any
			if c.body != "" {
				body = c.body
			}
			p := e.do(c.method, c.path, body).want(t, http.StatusUnprocessableEntity).problem(t)
			var msg string
			for _, f := range p.Errors {
				if f.Field == c.field {
					msg = f.Message
				}
			}
			if !strings.Contains(msg, c.rng) {
				t.Errorf("got errors %+v, want one naming %q with the range %q", p.Errors, c.field, c.rng)
			}
			if after := snapshot(); !bytes.Equal(after, before) {
				t.Fatalf("data changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}
