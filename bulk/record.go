package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Record is one entity record, keyed by property name, with values as JSON
// decodes them (string, bool, int64, float64, json.Number, nil, []any,
// map[string]any). A number cell is a json.Number holding its written text.
type Record = map[string]any

// Field is a top-level schema property: the JSON type a text cell is
// coerced to, and the string format checked on the way.
type Field struct {
	// Type is integer, number, boolean, string, array, object or "" (any).
	Type string
	// Format is the string format (date, date-time), if any.
	Format string
	// Nullable is true when the type list allows null: an empty cell is
	// then null instead of absent.
	Nullable bool
}

// fieldsOf reads the top-level properties and required list of a schema
// document. Types behind $ref are not followed: such a column stays text.
func fieldsOf(doc any) (map[string]Field, []string) {
	fields := make(map[string]Field)
	m, _ := doc.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	for name, p := range props {
		pm, _ := p.(map[string]any)
		var f Field
		switch t := pm["type"].(type) {
		case string:
			f.Type = t
		case []any:
			for _, x := range t {
				s, _ := x.(string)
				if s == "null" {
					f.Nullable = true
				} else if f.Type == "" {
					f.Type = s
				}
			}
		}
		f.Format, _ = pm["format"].(string)
		fields[name] = f
	}
	var required []string
	if req, ok := m["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok {
				required = append(required, s)
			}
		}
	}
	return fields, required
}

// Coerce turns a text cell into the field's type. An empty cell is
// (nil, false): absent, or null when the field is nullable.
func (f Field) Coerce(s string) (any, bool, error) {
	var c coerced
	ok, err := f.coerceInto(s, &c)
	if !ok || err != nil {
		return nil, ok, err
	}
	return c.value(), true, nil
}

// coerced is a cell turned into its field's type, not yet boxed in an any
// (which costs an allocation a cell): kind says which of its fields holds
// the value. The zero value is an absent cell.
type coerced struct {
	s    string // cString, and cNumber's text as written
	v    any    // cJSON
	n    int64  // cInteger
	kind coercedKind
	b    bool // cBoolean
}

type coercedKind uint8

const (
	cAbsent coercedKind = iota
	cNull
	cString
	cInteger
	cNumber
	cBoolean
	cJSON
)

// value is c as a record holds it.
func (c coerced) value() any {
	switch c.kind {
	case cString:
		return c.s
	case cInteger:
		return c.n
	case cNumber:
		return json.Number(c.s)
	case cBoolean:
		return c.b
	case cJSON:
		return c.v
	}
	return nil
}

// text is c as the sink's text formats write it (formatValue of its
// value); false for null or absent.
func (c coerced) text() (string, bool) {
	switch c.kind {
	case cAbsent, cNull:
		return "", false
	case cString, cNumber:
		return c.s, true
	case cInteger:
		return strconv.FormatInt(c.n, 10), true
	case cBoolean:
		return strconv.FormatBool(c.b), true
	}
	if c.v == nil {
		return "", false // JSON null
	}
	return formatValue(c.v), true
}

// coerceInto is Coerce into out, without the box (out is left as it was
// when the cell is not of the field's type).
func (f *Field) coerceInto(s string, out *coerced) (bool, error) {
	if s == "" {
		if f.Nullable {
			*out = coerced{kind: cNull}
			return true, nil
		}
		*out = coerced{}
		return false, nil
	}
	switch f.Type {
	case "integer":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return false, fmt.Errorf("%s is out of the integer range", quoteCell(s))
			}
			return false, fmt.Errorf("%s is not an integer", quoteCell(s))
		}
		*out = coerced{kind: cInteger, n: n}
		return true, nil
	case "number":
		// The written text is kept (json.Number): no float64 round trip, so
		// 4.90 stays 4.90 and a long decimal keeps its digits.
		t := strings.TrimSpace(s)
		if !isJSONNumber(t) {
			return false, fmt.Errorf("%s is not a number", quoteCell(s))
		}
		*out = coerced{kind: cNumber, s: t}
		return true, nil
	case "boolean":
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "t", "yes", "y", "1":
			*out = coerced{kind: cBoolean, b: true}
			return true, nil
		case "false", "f", "no", "n", "0":
			*out = coerced{kind: cBoolean}
			return true, nil
		}
		*out = coerced{}
		return false, fmt.Errorf("%s is not a boolean (true/false, yes/no, 1/0)", quoteCell(s))
	case "array", "object":
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return false, fmt.Errorf("%s is not JSON", quoteCell(s))
		}
		*out = coerced{kind: cJSON, v: v}
		return true, nil
	case "string":
		switch f.Format {
		case "date":
			if !isDate(s) {
				return false, fmt.Errorf("%s is not a date (YYYY-MM-DD)", quoteCell(s))
			}
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return false, fmt.Errorf("%s is not a date-time (RFC 3339, e.g. 2026-11-29T10:15:00Z)", quoteCell(s))
			}
		}
	}
	*out = coerced{kind: cString, s: s}
	return true, nil
}

// isJSONNumber reports whether s is a number as JSON writes one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// quoteCell quotes a cell for an error message, cut to a readable length.
func quoteCell(s string) string {
	const max = 60
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// Validate checks r against the entity's schema and returns a message that
// names the failing columns, or "" when r is valid.
func (e *Entity) Validate(r Record) string {
	if e.fast != nil && e.fast.check(r) == fastValid {
		return ""
	}
	err := e.Schema.Validate(map[string]any(r))
	if err == nil {
		return ""
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var msgs []string
	for _, v := range leafErrors(ve) {
		var msg string
		switch k := v.ErrorKind.(type) {
		case *kind.Required:
			msg = "missing " + strings.Join(k.Missing, ", ")
		case *kind.AdditionalProperties:
			msg = "unknown column " + strings.Join(k.Properties, ", ")
		default:
			msg = v.ErrorKind.LocalizedString(printer)
		}
		if len(v.InstanceLocation) > 0 {
			msg = "column " + strings.Join(v.InstanceLocation, "/") + ": " + msg
		}
		msgs = append(msgs, msg)
	}
	return strings.Join(msgs, "; ")
}

// leafErrors are the errors at the leaves of a schema validation error's
// tree of causes: the ones that name a field and what is wrong with it.
func leafErrors(v *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(v.Causes) == 0 {
		return []*jsonschema.ValidationError{v}
	}
	var leaves []*jsonschema.ValidationError
	for _, c := range v.Causes {
		leaves = append(leaves, leafErrors(c)...)
	}
	return leaves
}

var printer = message.NewPrinter(language.English)
