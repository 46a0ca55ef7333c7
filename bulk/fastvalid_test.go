package bulk

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fastKeywords are the keyword choices a cross-check schema is built from:
// bit i of a selector picks fastKeywords[i] for the property.
var fastKeywords = []string{
	`"type": "string"`,
	`"type": "integer"`,
	`"type": "number"`,
	`"type": ["boolean", "null"]`,
	`"type": ["string", "null", "integer"]`,
	`"minimum": 0`,
	`"maximum": 100.5`,
	`"exclusiveMinimum": -3`,
	`"exclusiveMaximum": 9007199254740993`,
	`"minimum": 0.1`,
	`"minLength": 1`,
	`"maxLength": 3`,
	`"pattern": "^[A-Z]+-[0-9]{2,}$"`,
	`"format": "date"`,
	`"format": "date-time"`,
	`"enum": ["a", "é", true, null]`,
	`"maximum": 1e300`,
	`"description": "annotation"`,
	`"multipleOf": 2`,
	`"const": "a"`,
}

type crossSchema struct {
	lib  *jsonschema.Schema
	fast *fastSchema
	doc  string
}

var crossCache sync.Map // selector → *crossSchema

// crossCompile compiles the schema a selector picks with both validators.
func crossCompile(t *testing.T, sel uint32, required, closed bool) *crossSchema {
	key := fmt.Sprint(sel, required, closed)
	if c, ok := crossCache.Load(key); ok {
		return c.(*crossSchema)
	}
	var kws []string
	for i, kw := range fastKeywords {
		if sel&(1<<i) != 0 {
			kws = append(kws, kw)
		}
	}
	doc := `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {"v": {` +
		strings.Join(kws, ", ") + `}, "w": {"type": "string"}}`
	if required {
		doc += `, "required": ["v"]`
	}
	if closed {
		doc += `, "additionalProperties": false`
	}
	doc += "}"
	parsed, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("schema %s: %v", doc, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("mem:///s.json", parsed); err != nil {
		t.Fatal(err)
	}
	lib, err := c.Compile("mem:///s.json")
	if err != nil {
		t.Fatalf("schema %s: %v", doc, err)
	}
	cs := &crossSchema{lib: lib, fast: compileFast(parsed), doc: doc}
	crossCache.Store(key, cs)
	return cs
}

// crossValues are the values a cross-check record's property takes.
func crossValues(s string, x float64, i int64) []any {
	n := json.Number("12.5") // as a JSON decoder gives it: always a valid number
	if _, err := n.Float64(); err == nil && json.Valid([]byte(s)) && strings.Trim(s, "-0123456789.eE+") == "" {
		n = json.Number(s)
	}
	return []any{s, x, i, float64(i), x == 0, nil, []any{s}, map[string]any{"s": s}, n,
		strings.ToUpper(s), "2026-02-28", "2026-02-29", "2026-11-29T10:15:00.5+01:00", "2026-11-29T23:59:60Z",
		"SKU-0042", "", "é", 0.1, 100.5, 9007199254740993.0, int64(9007199254740993), -3.0, math.NaN()}
}

// crossCheck fails when the fast checker is sure of a verdict the library
// does not give.
func crossCheck(t *testing.T, cs *crossSchema, rec Record) fastVerdict {
	t.Helper()
	got := cs.fast.check(rec)
	libValid := cs.lib.Validate(map[string]any(rec)) == nil
	switch {
	case got == fastValid && !libValid:
		t.Fatalf("schema %s, record %#v: fast checker says valid, the library says invalid", cs.doc, rec)
	case got == fastInvalid && libValid:
		t.Fatalf("schema %s, record %#v: fast checker says invalid, the library says valid", cs.doc, rec)
	}
	return got
}

// FuzzFastValidator cross-checks the fast checker against the library on
// schemas built from the supported keywords (and a few it must refuse) and
// on records of every value type: wherever the fast checker gives a
// verdict, it is the library's.
func FuzzFastValidator(f *testing.F) {
	f.Add(uint32(1|1<<10|1<<12), "SKU-12", 0.5, int64(7), true, false)
	f.Add(uint32(1<<2|1<<5|1<<6), "x", 100.5, int64(-1), false, true)
	f.Add(uint32(1<<1|1<<7|1<<8), "", -3.0, int64(9007199254740992), true, true)
	f.Add(uint32(1<<0|1<<13), "2026-13-01", 1e300, int64(0), false, false)
	f.Add(uint32(1<<0|1<<14), "2026-11-29T10:15:00Z", 0.1, int64(1), true, false)
	f.Add(uint32(1<<15|1<<3), "é", 0.0, int64(0), false, false)
	f.Add(uint32(1<<9|1<<16), "1", 0.30000000000000004, int64(100), false, false)
	f.Fuzz(func(t *testing.T, sel uint32, s string, x float64, i int64, required, closed bool) {
		sel &= 1<<len(fastKeywords) - 1
		cs := crossCompile(t, sel, required, closed)
		unsupported := sel&(1<<18|1<<19) != 0
		if unsupported != (cs.fast == nil) {
			t.Fatalf("schema %s: got fast checker %v, want one only for the supported subset", cs.doc, cs.fast != nil)
		}
		if cs.fast == nil {
			return
		}
		vals := crossValues(s, x, i)
		for _, v := range vals {
			crossCheck(t, cs, Record{"v": v})
			crossCheck(t, cs, Record{"v": v, "w": s})
			crossCheck(t, cs, Record{"v": v, "extra": s})
		}
		crossCheck(t, cs, Record{})
		crossCheck(t, cs, Record{"w": x})
	})
}

// TestFastValidatorDecides checks that the fast checker gives a verdict on
// the records of the benchmark schema, so the library is left the rare
// cases only, and that the verdict is the library's.
func TestFastValidatorDecides(t *testing.T) {
	t.Parallel()
	if loadTestConfig(t, "", "").Entities["product"].fast == nil {
		t.Fatal("got no fast checker for the test schema, want one")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.json"), []byte(benchSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("entities:\n  product:\n    schema: s.json\n    key: [sku]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "c.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Entities["product"]
	if e.fast == nil {
		t.Fatal("got no fast checker for the benchmark schema, want one")
	}
	cs := &crossSchema{lib: e.Schema, fast: e.fast, doc: benchSchema}
	good := Record{"sku": "SKU-1", "name": "Product 1", "category": "c", "price": 0.0, "cost": 1.5, "stock": int64(3),
		"weight": 1.125, "active": true, "releasedAt": "2026-02-28", "description": "fine"}
	if got := crossCheck(t, cs, good); got != fastValid {
		t.Fatalf("got verdict %d for a good record, want fastValid", got)
	}
	for name, change := range map[string]func(Record){
		"missing name":    func(r Record) { delete(r, "name") },
		"negative price":  func(r Record) { r["price"] = -0.5 },
		"empty sku":       func(r Record) { r["sku"] = "" },
		"bad date":        func(r Record) { r["releasedAt"] = "2026-02-30" },
		"long text":       func(r Record) { r["description"] = strings.Repeat("é", 201) },
		"stock not int":   func(r Record) { r["stock"] = 1.5 },
		"active a string": func(r Record) { r["active"] = "yes" },
	} {
		r := Record{}
		for k, v := range good {
			r[k] = v
		}
		change(r)
		if got := crossCheck(t, cs, r); got != fastInvalid {
			t.Errorf("%s: got verdict %d, want fastInvalid", name, got)
		}
		if msg := e.Validate(r); msg == "" {
			t.Errorf("%s: got no message from Validate, want one", name)
		}
	}
}

// FuzzIsDate holds isDate to time.Parse(time.DateOnly), whose work it
// saves; the seeds walk every month end of a leap and a common year and
// the malformed shapes.
func FuzzIsDate(f *testing.F) {
	for _, y := range []string{"0000", "1900", "2000", "2024", "2026", "9999"} {
		for m := 0; m <= 13; m++ {
			for _, d := range []int{0, 1, 28, 29, 30, 31, 32} {
				f.Add(fmt.Sprintf("%s-%02d-%02d", y, m, d))
			}
		}
	}
	for _, s := range []string{"", "2026-1-01", "2026-01-1", "+026-01-01", "2026/01/01", "2026-01-01 ", "2026-01-01T00:00:00Z", "２０２６-01-01", "-2026-01-01", "2026-0a-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := time.Parse(time.DateOnly, s)
		if got := isDate(s); got != (err == nil) {
			t.Fatalf("isDate(%q) = %v, time.Parse says %v", s, got, err)
		}
	})
}
