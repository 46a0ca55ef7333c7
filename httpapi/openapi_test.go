package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// TestOpenAPIMatchesRoutes keeps openapi.json and routes.go in step: every
// route is documented and every documented operation is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("got openapi %q, want 3.1.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "parameters", "summary", "description", "servers":
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, rt := range (&server{}).routes() {
		if !rt.mount {
			routed[rt.method+" "+rt.path] = true
		}
	}
	if missing := difference(routed, documented); len(missing) > 0 {
		t.Errorf("routes missing from openapi.json: %v", missing)
	}
	if extra := difference(documented, routed); len(extra) > 0 {
		t.Errorf("openapi.json documents operations that are no route: %v", extra)
	}
}

func difference(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIRefsResolve checks that every $ref in the document points at a
// component that exists.
func TestOpenAPIRefsResolve(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				var node any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := node.(map[string]any)
					node = m[part]
				}
				if node == nil {
					t.Errorf("$ref %q points at nothing", ref)
				}
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(doc)
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	r := e.do("GET", "/openapi.json", nil).want(t, http.StatusOK)
	if string(r.body) != string(openAPI) || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %q with %d bytes, want the embedded document", r.header.Get("Content-Type"), len(r.body))
	}
}

// TestOpenAPIResponseSchemas checks that the schemas of the task, log line
// and event list every field of their JSON, and require each one (every
// field is present, null where unset).
func TestOpenAPIResponseSchemas(t *testing.T) {
	t.Parallel()
	sp := loadSpec(t)
	for name, typ := range map[string]reflect.Type{
		"Task":     reflect.TypeFor[commonops.Task](),
		"LogEntry": reflect.TypeFor[commonops.LogEntry](),
		"Event":    reflect.TypeFor[commonops.Event](),
	} {
		t.Run(name, func(t *testing.T) {
			var fields []string
			for _, f := range reflect.VisibleFields(typ) {
				if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "-" && f.IsExported() {
					fields = append(fields, tag)
				}
			}
			sort.Strings(fields)
			sch := sp.schema(name)
			props, _ := sch["properties"].(map[string]any)
			if got := sortedKeys(props); !slices.Equal(got, fields) {
				t.Errorf("got properties %v, want the JSON fields %v", got, fields)
			}
			required := anyStrings(sch["required"])
			sort.Strings(required)
			if !slices.Equal(required, fields) {
				t.Errorf("got required %v, want every field %v", required, fields)
			}
		})
	}
}

// TestOpenAPIIntegerRanges checks that every integer field of a request
// body states the minimum and maximum of operations.IntRanges, and that
// every range there belongs to a documented field.
func TestOpenAPIIntegerRanges(t *testing.T) {
	t.Parallel()
	sp := loadSpec(t)
	seen := map[string]bool{}
	var walk func(where string, sch map[string]any)
	walk = func(where string, sch map[string]any) {
		props, _ := sch["properties"].(map[string]any)
		for _, name := range sortedKeys(props) {
			p := sp.resolve(props[name])
			if slices.Contains(types(p), "integer") {
				seen[name] = true
				r, ok := operations.IntRanges[name]
				lo, _ := bound(p, "minimum")
				hi, _ := bound(p, "maximum")
				switch {
				case !ok:
					t.Errorf("%s.%s: an integer without a range in operations.IntRanges", where, name)
				case lo == nil || hi == nil || lo.Int64() != r.Min || hi.Int64() != r.Max || !lo.IsInt64() || !hi.IsInt64():
					t.Errorf("%s.%s: got minimum %v maximum %v, want %d and %d", where, name, lo, hi, r.Min, r.Max)
				}
			}
			walk(where+"."+name, p)
		}
		if items := sp.resolve(sch["items"]); items != nil {
			walk(where+"[]", items)
		}
	}
	for _, op := range sp.ops {
		if op.body != nil {
			walk(op.id, op.body)
		}
	}
	for name := range operations.IntRanges {
		if !seen[name] {
			t.Errorf("operations.IntRanges[%q] is no integer field of a request body", name)
		}
	}
}

// TestOpenAPIErrorStatuses checks the statuses every route can give
// whatever its handler does: 401, 403 and 429 (authentication, policy,
// rate limits) and 422 for bad identity headers on authenticated routes,
// 400 and 404 for the {id} of a task, 400, 413 and 422 for a body; and that
// every error answer of the task API is a problem document (the probes
// answer 503 with their own report).
func TestOpenAPIErrorStatuses(t *testing.T) {
	t.Parallel()
	sp := loadSpec(t)
	tenant := map[string]bool{}
	for _, rt := range (&server{}).routes() {
		tenant[rt.method+" "+rt.path] = !rt.policy.public
	}
	for _, op := range sp.ops {
		var want []string
		if tenant[op.String()] {
			want = append(want, "401", "403", "422", "429", "503")
		}
		if strings.Contains(op.path, "{id}") {
			want = append(want, "400", "404")
		}
		if op.body != nil {
			want = append(want, "400", "413", "422")
		}
		for _, status := range want {
			if !op.documents(atoi(status)) {
				t.Errorf("%s: status %s is not documented", op, status)
			}
		}
		for status, resp := range op.responses {
			if status < "400" || !tenant[op.String()] {
				continue
			}
			content, _ := resp["content"].(map[string]any)
			media, _ := content["application/problem+json"].(map[string]any)
			if sch, _ := media["schema"].(map[string]any); sch == nil || sch["$ref"] != "#/components/schemas/Problem" {
				t.Errorf("%s: status %s is not answered with the Problem schema", op, status)
			}
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
