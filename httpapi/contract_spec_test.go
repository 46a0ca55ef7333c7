package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"mime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/commonops/commonops"
)

// spec is the part of openapi.json the contract fuzzer and the document
// tests read: each operation's parameters, request body schema and
// documented responses, with every $ref resolved. It is a plain walk over
// map[string]any, enough for the JSON Schema our document uses (type, enum,
// required, properties, additionalProperties, items, minimum, maximum,
// minItems, maxItems, maxLength, pattern, format).
type spec struct {
	doc map[string]any
	ops []*operation
}

// operation is one method on one path of the document.
type operation struct {
	id     string // operationId
	method string // upper case
	path   string // the document's path template
	params []param
	// body is the application/json request body schema, nil for none.
	body map[string]any
	// responses maps a status ("200", "422") to its resolved response.
	responses map[string]map[string]any
}

type param struct {
	name     string
	in       string // path, query or header
	required bool
	schema   map[string]any
}

func (op *operation) String() string { return op.method + " " + op.path }

// documents reports whether status is a documented answer of op.
func (op *operation) documents(status int) bool {
	_, ok := op.responses[strconv.Itoa(status)]
	return ok
}

// statuses lists op's documented statuses, sorted.
func (op *operation) statuses() []string {
	var out []string
	for s := range op.responses {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// loadSpec reads the embedded openapi.json. Numbers stay json.Number, so
// int64 bounds keep their exact value.
func loadSpec(t testing.TB) *spec {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(openAPI))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	s := &spec{doc: doc}
	paths, _ := doc["paths"].(map[string]any)
	for _, path := range sortedKeys(paths) {
		item, _ := paths[path].(map[string]any)
		shared := s.params(item["parameters"])
		for _, method := range sortedKeys(item) {
			raw, ok := item[method].(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			op := &operation{
				id:        str(raw["operationId"]),
				method:    strings.ToUpper(method),
				path:      path,
				params:    append(slices.Clone(shared), s.params(raw["parameters"])...),
				responses: map[string]map[string]any{},
			}
			if rb := s.resolve(raw["requestBody"]); rb != nil {
				content, _ := rb["content"].(map[string]any)
				if mt, ok := content["application/json"].(map[string]any); ok {
					op.body = s.resolve(mt["schema"])
				}
			}
			resps, _ := raw["responses"].(map[string]any)
			for status, r := range resps {
				op.responses[status] = s.resolve(r)
			}
			s.ops = append(s.ops, op)
		}
	}
	return s
}

func (s *spec) params(v any) []param {
	list, _ := v.([]any)
	var out []param
	for _, p := range list {
		m := s.resolve(p)
		req, _ := m["required"].(bool)
		out = append(out, param{name: str(m["name"]), in: str(m["in"]), required: req, schema: s.resolve(m["schema"])})
	}
	return out
}

// resolve follows $ref (local ones, "#/a/b") until it reaches a node that
// is no reference; nil for anything that is not an object.
func (s *spec) resolve(v any) map[string]any {
	m, _ := v.(map[string]any)
	for i := 0; m != nil && i < 16; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var node any = s.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			parent, _ := node.(map[string]any)
			node = parent[part]
		}
		m, _ = node.(map[string]any)
	}
	return m
}

// schema returns the component schema name.
func (s *spec) schema(name string) map[string]any {
	return s.resolve(map[string]any{"$ref": "#/components/schemas/" + name})
}

// types returns a schema's "type" as a list ("integer" or ["string", "null"]).
func types(sch map[string]any) []string {
	switch v := sch["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, str(x))
		}
		return out
	}
	return nil
}

// bound returns the integer minimum or maximum of sch, if it has one.
func bound(sch map[string]any, key string) (*big.Int, bool) {
	n, ok := sch[key].(json.Number)
	if !ok {
		return nil, false
	}
	b, ok := new(big.Int).SetString(n.String(), 10)
	return b, ok
}

// validate checks a decoded JSON value (numbers as json.Number) against
// sch and returns what does not match, each prefixed by where.
func (s *spec) validate(sch map[string]any, v any, where string) []string {
	sch = s.resolve(sch)
	if sch == nil {
		return nil
	}
	var bad []string
	fail := func(format string, args ...any) {
		bad = append(bad, where+": "+fmt.Sprintf(format, args...))
	}
	if enum, ok := sch["enum"].([]any); ok && v != nil {
		if !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
			fail("%v is not one of %v", v, enum)
		}
	}
	if ts := types(sch); len(ts) > 0 && !slices.Contains(ts, jsonType(v)) &&
		!(jsonType(v) == "integer" && slices.Contains(ts, "number")) {
		fail("got %s %s, want %v", jsonType(v), commonops.Shorten(fmt.Sprint(v), 40), ts)
		return bad
	}
	switch v := v.(type) {
	case map[string]any:
		for _, name := range anyStrings(sch["required"]) {
			if _, ok := v[name]; !ok {
				fail("missing required %q", name)
			}
		}
		props, _ := sch["properties"].(map[string]any)
		for name, val := range v {
			if p, ok := props[name]; ok {
				bad = append(bad, s.validate(s.resolve(p), val, where+"."+name)...)
				continue
			}
			switch extra := sch["additionalProperties"].(type) {
			case bool:
				if !extra {
					fail("unexpected property %q", name)
				}
			case map[string]any:
				bad = append(bad, s.validate(extra, val, where+"."+name)...)
			}
		}
	case []any:
		for i, item := range v {
			bad = append(bad, s.validate(s.resolve(sch["items"]), item, fmt.Sprintf("%s[%d]", where, i))...)
		}
	case json.Number:
		x, _ := new(big.Float).SetString(v.String())
		if lo, ok := sch["minimum"].(json.Number); ok && x != nil {
			if l, _ := new(big.Float).SetString(lo.String()); l != nil && x.Cmp(l) < 0 {
				fail("%s is under the minimum %s", v, lo)
			}
		}
		if hi, ok := sch["maximum"].(json.Number); ok && x != nil {
			if h, _ := new(big.Float).SetString(hi.String()); h != nil && x.Cmp(h) > 0 {
				fail("%s is over the maximum %s", v, hi)
			}
		}
	}
	return bad
}

// validateResponse checks an answer of op against the document: a
// documented status, a documented media type, and a body that matches the
// schema of that media type. It returns what is wrong.
func (s *spec) validateResponse(op *operation, status int, contentType string, body []byte) []string {
	resp, ok := op.responses[strconv.Itoa(status)]
	if !ok {
		return []string{fmt.Sprintf("status %d is not documented (documented: %v)", status, op.statuses())}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			return []string{fmt.Sprintf("status %d documents no content, got %d bytes", status, len(body))}
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	media, ok := content[mt].(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("status %d answered %q, documented: %v", status, contentType, sortedKeys(content))}
	}
	if !strings.HasSuffix(mt, "json") {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{fmt.Sprintf("status %d body is not JSON: %v", status, err)}
	}
	bad := s.validate(s.resolve(media["schema"]), v, "body")
	if mt == "application/problem+json" {
		if p, _ := v.(map[string]any); p == nil || fmt.Sprint(p["status"]) != strconv.Itoa(status) {
			bad = append(bad, fmt.Sprintf("problem status %v, response status %d", p["status"], status))
		}
	}
	return bad
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func str(v any) string { s, _ := v.(string); return s }

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		out = append(out, str(x))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
