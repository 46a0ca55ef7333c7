package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// readBody reads the request body, refusing one over the limit with
// ETOOLARGE.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return s.readBodyUpTo(w, r, s.maxBody)
}

// readBodyUpTo is readBody with the limit max.
func (s *server) readBodyUpTo(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, commonops.Errorf(commonops.ETOOLARGE, "the request body is %d bytes; the limit is %d", r.ContentLength, max)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, commonops.Errorf(commonops.ETOOLARGE, "the request body is over the limit of %d bytes", max)
		}
		return nil, &commonops.Error{Code: commonops.EMALFORMED, Message: "the request body could not be read", Err: err}
	}
	return body, nil
}

// decode reads the request body and decodes it into dst with decodeJSON.
func (s *server) decode(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSON(body, dst)
}

// decodeJSON decodes exactly one JSON object into dst. Broken syntax, an
// empty body, trailing data or a body that is not an object is EMALFORMED
// (400); well-formed JSON of the wrong shape (an unknown field, a value of
// the wrong type) is EINVALID (422) naming the field.
func decodeJSON(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if terr := timeFieldError(body, dst); terr != nil {
			err = terr
		}
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return commonops.Errorf(commonops.EMALFORMED, "the request body must hold a single JSON object, with nothing after it")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return commonops.Errorf(commonops.EMALFORMED, "the request body is empty; it must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return commonops.Errorf(commonops.EMALFORMED, "the request body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return commonops.Errorf(commonops.EMALFORMED, "the request body is not valid JSON: %s (at byte %d)", strings.TrimPrefix(syntax.Error(), "json: "), syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return commonops.Errorf(commonops.EMALFORMED, "the request body must be a JSON object, not %s", jsonKind(typ.Value))
		}
		want := expected(typ.Type)
		if r, ok := operations.IntRanges[typ.Field]; ok && isInteger(typ.Type) {
			want = "an integer " + r.String()
		}
		return commonops.Invalid(commonops.FieldError{
			Field:   typ.Field,
			Message: fmt.Sprintf("must be %s, not %s", want, got(typ.Value)),
		})
	}
	// encoding/json has no typed error for an unknown field; its message is
	// stable: `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return commonops.Invalid(commonops.FieldError{Field: strings.Trim(name, `"`), Message: "is not a known field"})
	}
	return &commonops.Error{Code: commonops.EMALFORMED, Message: "the request body could not be decoded", Err: err}
}

// jsonKind reduces an UnmarshalTypeError value ("number 1e100") to its
// kind with an article ("a number").
func jsonKind(v string) string {
	kind, _, _ := strings.Cut(v, " ")
	switch kind {
	case "array", "object":
		return "an " + kind
	}
	return "a " + kind
}

// got describes the offending value of an UnmarshalTypeError: the literal
// when the decoder kept it ("1e100"), else its kind ("a string").
func got(v string) string {
	if _, lit, ok := strings.Cut(v, " "); ok && lit != "" {
		if len(lit) > 64 {
			lit = lit[:64] + "..."
		}
		return lit
	}
	return jsonKind(v)
}

var timeType = reflect.TypeFor[time.Time]()

// expected describes the JSON a Go type takes.
func expected(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "an RFC 3339 date-time string"
	}
	if isInteger(t) {
		return "an integer (within range)"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.String()
}

// isInteger reports whether t (or what it points to) is an integer type.
func isInteger(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// timeFieldError names the time field of dst (a pointer to a struct) whose
// value in body does not parse. encoding/json hands back the error of
// time.Time's UnmarshalJSON as it is, without the field, so decodeJSON asks
// here which field it was and reports it as any other value of the wrong
// type. It returns nil when no time field is to blame.
func timeFieldError(body []byte, dst any) error {
	t := reflect.TypeOf(dst)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return nil
	}
	for _, f := range reflect.VisibleFields(t) {
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft != timeType || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		for key, raw := range obj {
			// encoding/json matches keys without regard to case.
			if !strings.EqualFold(key, name) || string(raw) == "null" {
				continue
			}
			var tm time.Time
			if tm.UnmarshalJSON(raw) != nil {
				kind := "string"
				if raw[0] != '"' {
					kind = "value"
				}
				return &json.UnmarshalTypeError{Value: kind + " " + string(raw), Type: timeType, Field: name}
			}
		}
	}
	return nil
}
