package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/commonops/commonops"
)

// TestProblemTable checks the one table from error code to status, and that
// an unexpected error never shows its text to the client but is logged.
func TestProblemTable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err    error
		status int
		slug   string
		detail string
	}{
		{commonops.Errorf(commonops.EINVALID, "bad field"), 422, "invalid", "bad field"},
		{commonops.Errorf(commonops.EMALFORMED, "bad json"), 400, "malformed", "bad json"},
		{fmt.Errorf("get task: %w", commonops.Errorf(commonops.ENOTFOUND, "no task")), 404, "not-found", "no task"},
		{commonops.Errorf(commonops.ECONFLICT, "wrong state"), 409, "conflict", "wrong state"},
		{commonops.Errorf(commonops.ETOOLARGE, "too big"), 413, "too-large", "too big"},
		{commonops.Errorf(commonops.EFORBIDDEN, "expired"), 403, "forbidden", "expired"},
		{commonops.Errorf(commonops.EUNAVAILABLE, "database down"), 503, "unavailable", "database down"},
		{&commonops.Error{Code: commonops.EINTERNAL, Message: "secret detail"}, 500, "internal", "unexpected error"},
		{errors.New("pq: password authentication failed for user admin"), 500, "internal", "unexpected error"},
	} {
		t.Run(c.slug, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			s := &server{log: slog.New(slog.NewJSONHandler(&logs, nil))}
			rec := httptest.NewRecorder()
			s.problem(rec, httptest.NewRequest("GET", "/x", nil), c.err)
			var p problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("decode %s: %v", rec.Body, err)
			}
			if rec.Code != c.status || p.Status != c.status || p.Type != problemBase+c.slug || !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("got %d %+v, want %d %s with detail %q", rec.Code, p, c.status, c.slug, c.detail)
			}
			if c.status == http.StatusInternalServerError {
				if strings.Contains(rec.Body.String(), "secret") || strings.Contains(rec.Body.String(), "password") {
					t.Fatalf("internal detail leaked: %s", rec.Body)
				}
				if !strings.Contains(logs.String(), c.err.Error()) {
					t.Fatalf("got log %s, want the error logged", logs.String())
				}
			}
			if c.status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Fatalf("got no Retry-After on a 503")
			}
		})
	}
}
