package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
)

// MaxIdentityLen bounds X-Tenant-Id and X-User-Id.
const MaxIdentityLen = 128

// identity returns the tenant (X-Tenant-Id) and the requester (X-User-Id)
// of r; each defaults to "default". Until authentication lands, the API
// gateway in front of commonops sets them.
func identity(r *http.Request) (tenant, user string, err error) {
	var fields []commonops.FieldError
	get := func(header string) string {
		v := strings.TrimSpace(r.Header.Get(header))
		switch {
		case v == "":
			return commonops.DefaultTenant
		case len(v) > MaxIdentityLen:
			fields = append(fields, commonops.FieldError{Field: header, Message: fmt.Sprintf("must be at most %d characters", MaxIdentityLen)})
		case !commonops.Printable(v):
			fields = append(fields, commonops.FieldError{Field: header, Message: "must be printable text"})
		}
		return v
	}
	tenant, user = get("X-Tenant-Id"), get("X-User-Id")
	if len(fields) > 0 {
		return "", "", commonops.Invalid(fields...)
	}
	return tenant, user, nil
}

// taskID returns the {id} path value in canonical form, or EMALFORMED when
// it is not a UUID (checked before any store is touched).
func taskID(r *http.Request) (string, error) {
	raw := r.PathValue("id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return "", &commonops.Error{
			Code:    commonops.EMALFORMED,
			Message: fmt.Sprintf("task id %q is not a UUID", commonops.Shorten(raw, 64)),
			Fields:  []commonops.FieldError{{Field: "id", Message: "must be a UUID like 0b7e9d5c-2f0a-4c55-9a3e-6f1d2c3b4a59"}},
		}
	}
	return id.String(), nil
}

// query reads query-string parameters, collecting every problem so that a
// request learns all of them at once.
type query struct {
	v      url.Values
	fields []commonops.FieldError
}

func newQuery(r *http.Request) *query { return &query{v: r.URL.Query()} }

func (q *query) fail(name, format string, args ...any) {
	q.fields = append(q.fields, commonops.FieldError{Field: name, Message: fmt.Sprintf(format, args...)})
}

// str returns a text parameter, at most maxLen bytes of printable text.
func (q *query) str(name string, maxLen int) string {
	v := strings.TrimSpace(q.v.Get(name))
	if len(v) > maxLen {
		q.fail(name, "must be at most %d characters", maxLen)
		return ""
	}
	return q.printable(name, v)
}

// text returns a text parameter of printable text, of any length (the
// service bounds the ones it takes).
func (q *query) text(name string) string {
	return q.printable(name, strings.TrimSpace(q.v.Get(name)))
}

func (q *query) printable(name, v string) string {
	if !commonops.Printable(v) {
		q.fail(name, "must be printable text")
		return ""
	}
	return v
}

// int returns an integer parameter in [lo, hi], def when absent. Values out
// of range are refused, never clamped.
func (q *query) int(name string, def, lo, hi int) int {
	raw := strings.TrimSpace(q.v.Get(name))
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		q.fail(name, "must be an integer from %d to %d", lo, hi)
		return def
	}
	return n
}

// bool returns a true/false parameter, false when absent.
func (q *query) bool(name string) bool {
	raw := strings.TrimSpace(q.v.Get(name))
	if raw == "" {
		return false
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		q.fail(name, "must be true or false")
	}
	return b
}

// date returns a time parameter: RFC 3339, or YYYY-MM-DD meaning midnight
// UTC of that day, or of the next day when endOfDay is set (so an end date
// includes the day it names).
func (q *query) date(name string, endOfDay bool) *time.Time {
	raw := strings.TrimSpace(q.v.Get(name))
	if raw == "" {
		return nil
	}
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		t = t.UTC()
		return &t
	}
	if t, err := time.Parse(time.DateOnly, raw); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return &t
	}
	q.fail(name, "must be an RFC 3339 date-time (2024-05-01T00:00:00Z) or a date (2024-05-01)")
	return nil
}

func (q *query) err() error {
	if len(q.fields) > 0 {
		return commonops.Invalid(q.fields...)
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// domainError returns the *commonops.Error in err's chain, or nil.
func domainError(err error) *commonops.Error {
	var e *commonops.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
