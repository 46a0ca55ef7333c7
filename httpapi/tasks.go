package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// requestHash identifies a create request for its Idempotency-Key: the
// SHA-256 of the tenant and the compacted body (so whitespace does not
// matter, but key order does).
func requestHash(tenant string, body []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(buf.Bytes())
	return hex.EncodeToString(h.Sum(nil))
}

// handleCreate serves POST /tasks. With an Idempotency-Key, the same key and
// body answer the first response again (with Idempotent-Replayed: true); the
// same key with another body is 422.
func handleCreate(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		ri := info(r)
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		var in commonops.CreateInput
		if err := decodeJSON(body, &in); err != nil {
			return err
		}
		if err := operations.MayCreate(r.Context(), in.TaskType); err != nil {
			return err
		}
		key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
		if !printableASCII(key) {
			return commonops.Invalid(commonops.FieldError{Field: "Idempotency-Key", Message: "must be printable ASCII"})
		}
		req := operations.CreateRequest{TenantID: ri.tenant, Requester: ri.user, Input: in, IdempotencyKey: key}
		if key != "" {
			req.RequestHash = requestHash(ri.tenant, body)
		}
		c, replayed, err := s.svc.Create(r.Context(), req)
		if err != nil {
			return err
		}
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Location", prefix+"/tasks/"+c.Task.ID)
		s.writeJSON(w, r, http.StatusCreated, c)
		return nil
	})
}

// listStatusSplit separates the statuses of ?status=.
const listStatusSplit = ","

// listPage is the answer of GET /tasks. total counts the matching tasks up
// to ?totalCap= (commonops.TotalCapDefault, its most, when absent) unless
// ?total=exact; totalCapped tells that more match. nextCursor, null on a page shorter than pageSize, is the
// ?cursor= of the next page.
type listPage struct {
	Tasks       []*commonops.Task `json:"tasks"`
	Total       int               `json:"total"`
	TotalCapped bool              `json:"totalCapped"`
	Page        int               `json:"page"`
	PageSize    int               `json:"pageSize"`
	NextCursor  *string           `json:"nextCursor"`
}

// Values of ?total=.
const (
	totalCapped = "capped"
	totalExact  = "exact"
)

// handleList serves GET /tasks.
func handleList(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		f, err := listFilter(r)
		if err != nil {
			return err
		}
		p, err := s.svc.ListPage(r.Context(), f)
		if err != nil {
			return err
		}
		out := listPage{Tasks: p.Tasks, Total: p.Total, TotalCapped: p.TotalCapped, Page: p.Page, PageSize: p.PageSize}
		if out.Tasks == nil {
			out.Tasks = []*commonops.Task{}
		}
		if p.NextCursor != nil {
			next := p.NextCursor.String()
			out.NextCursor = &next
		}
		s.writeJSON(w, r, http.StatusOK, out)
		return nil
	})
}

// listFilter reads the query of GET /tasks; any bad parameter is EINVALID
// naming it (a pageSize over the maximum is refused, not clamped). The
// bounds are operations.ListProblems', reported here with the problems of
// reading the query so that a request learns all of them at once.
func listFilter(r *http.Request) (commonops.ListFilter, error) {
	q := newQuery(r)
	f := commonops.ListFilter{
		TenantID:    info(r).tenant,
		Page:        q.int("page", 1, 1, operations.MaxPage),
		PageSize:    q.int("pageSize", commonops.PageSizeDefault, 1, commonops.PageSizeMax),
		TaskType:    q.text("taskType"),
		EntityType:  q.text("entityType"),
		RequestedBy: q.text("requestedBy"),
		Search:      q.text("search"),
		StartDate:   q.date("startDate", false),
		EndDate:     q.date("endDate", true),
		Sort:        commonops.DefaultSort,
		CountUpTo:   commonops.TotalCapDefault,
	}
	for _, part := range strings.Split(q.v.Get("status"), listStatusSplit) {
		st := commonops.Status(strings.TrimSpace(part))
		if st != "" && !slices.Contains(f.Statuses, st) {
			f.Statuses = append(f.Statuses, st)
		}
	}
	if raw := strings.TrimSpace(q.v.Get("sort")); raw != "" {
		sort, ok := parseSort(raw)
		if !ok {
			q.fail("sort", "must be a field, -field or field:asc|desc, with field one of %s", strings.Join(commonops.SortFields, ", "))
		}
		f.Sort = sort
	}
	f.CountUpTo = q.int("totalCap", commonops.TotalCapDefault, 1, commonops.TotalCapDefault)
	switch strings.TrimSpace(q.v.Get("total")) {
	case "", totalCapped:
	case totalExact:
		if q.v.Has("totalCap") {
			q.fail("totalCap", "counts up to a cap: not with total=%s", totalExact)
		}
		f.CountUpTo = 0
	default:
		q.fail("total", "must be %s (the default: count up to %d) or %s", totalCapped, commonops.TotalCapDefault, totalExact)
	}
	if raw := strings.TrimSpace(q.v.Get("cursor")); raw != "" {
		c, err := commonops.ParseCursor(raw)
		var e *commonops.Error
		switch {
		case errors.As(err, &e):
			q.fields = append(q.fields, e.Fields...)
		case q.v.Has("page"):
			q.fail("page", "cannot be combined with cursor, which tells the page")
		case c.Sort != f.Sort:
			q.fail("cursor", "was returned for sort %s; send the sort it was returned for", sortText(c.Sort))
		default:
			f.After = &c
		}
	}
	q.fields = append(q.fields, operations.ListProblems(f)...)
	return f, q.err()
}

// sortText is sort as ?sort= writes it.
func sortText(sort commonops.Sort) string {
	if sort.Desc {
		return "-" + sort.Field
	}
	return sort.Field
}

// parseSort reads "field", "-field", "field:asc" or "field:desc".
func parseSort(raw string) (commonops.Sort, bool) {
	var sort commonops.Sort
	field, dir, hasDir := strings.Cut(raw, ":")
	switch {
	case hasDir && dir == "desc":
		sort.Desc = true
	case hasDir && dir != "asc":
		return sort, false
	case !hasDir && strings.HasPrefix(field, "-"):
		field, sort.Desc = field[1:], true
	}
	sort.Field = field
	return sort, slices.Contains(commonops.SortFields, field)
}

// handleGet serves GET /tasks/{id}.
func handleGet(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		t, err := s.svc.Get(r.Context(), info(r).tenant, id)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, t)
		return nil
	})
}

// handleDelete serves DELETE /tasks/{id}: 204, or 409 while the task runs.
func handleDelete(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		if err := s.svc.Delete(r.Context(), info(r).tenant, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// handleCancel serves POST /tasks/{id}/cancel.
func handleCancel(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		t, err := s.svc.Cancel(r.Context(), info(r).tenant, id)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, t)
		return nil
	})
}

// handleRetry serves POST /tasks/{id}/retry; ?force=true goes past
// maxRetries.
func handleRetry(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		q := newQuery(r)
		force := q.bool("force")
		if err := q.err(); err != nil {
			return err
		}
		t, err := s.svc.Retry(r.Context(), info(r).tenant, id, force)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, t)
		return nil
	})
}

// handleUploadComplete serves POST /tasks/{id}/upload-complete.
func handleUploadComplete(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		t, err := s.svc.ConfirmUpload(r.Context(), info(r).tenant, id)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, t)
		return nil
	})
}

// handleDownload serves GET /tasks/{id}/download?file=output|errors|input.
func handleDownload(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		which := strings.TrimSpace(r.URL.Query().Get("file"))
		d, err := s.svc.DownloadURL(r.Context(), info(r).tenant, id, which)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, d)
		return nil
	})
}
