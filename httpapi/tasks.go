package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// listPage is the answer of GET /tasks.
type listPage struct {
	Tasks    []*commonops.Task `json:"tasks"`
	Total    int               `json:"total"`
	Page     int               `json:"page"`
	PageSize int               `json:"pageSize"`
}

// handleList serves GET /tasks.
func handleList(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		f, err := listFilter(r)
		if err != nil {
			return err
		}
		tasks, total, err := s.svc.List(r.Context(), f)
		if err != nil {
			return err
		}
		if tasks == nil {
			tasks = []*commonops.Task{}
		}
		s.writeJSON(w, r, http.StatusOK, listPage{Tasks: tasks, Total: total, Page: f.Page, PageSize: f.PageSize})
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
	q.fields = append(q.fields, operations.ListProblems(f)...)
	return f, q.err()
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
