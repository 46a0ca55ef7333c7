package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// batchBodyFactor sizes the body limit of POST /tasks/batch: this many
// times the limit of one request body (16 MiB by default).
const batchBodyFactor = 16

// batchBody is the body of POST /tasks/batch. Its items are decoded one
// by one, so that one bad item is that item's problem only.
type batchBody struct {
	Tasks []json.RawMessage `json:"tasks"`
}

// batchItem is one item: the body of POST /tasks with its own key.
type batchItem struct {
	commonops.CreateInput
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// batchResult is the answer to one item: a task id (with the upload URL
// of a task with a file) or a problem.
type batchResult struct {
	Status          int               `json:"status"`
	ID              string            `json:"id,omitempty"`
	Replayed        bool              `json:"replayed,omitempty"`
	UploadURL       *string           `json:"uploadUrl,omitempty"`
	UploadMethod    *string           `json:"uploadMethod,omitempty"`
	UploadHeaders   map[string]string `json:"uploadHeaders,omitempty"`
	UploadExpiresAt *time.Time        `json:"uploadExpiresAt,omitempty"`
	Problem         *problem          `json:"problem,omitempty"`
}

// batchAnswer is the answer of POST /tasks/batch: one result per item, in
// order; created counts the items answered with a task (replays
// included), failed those answered with a problem.
type batchAnswer struct {
	Results []batchResult `json:"results"`
	Created int           `json:"created"`
	Failed  int           `json:"failed"`
}

// handleCreateBatch serves POST /tasks/batch: up to operations.MaxBatch
// creates stored in one transaction, each answered on its own (200 even
// when every item failed). Only a body that is not a batch, or a failure
// of the store, fails the request as a whole.
func handleCreateBatch(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		ri := info(r)
		body, err := s.readBodyUpTo(w, r, batchBodyFactor*s.maxBody)
		if err != nil {
			return err
		}
		var in batchBody
		if err := decodeJSON(body, &in); err != nil {
			return err
		}
		switch {
		case in.Tasks == nil:
			return commonops.Invalid(commonops.FieldError{Field: "tasks", Message: "is required: an array of tasks to create"})
		case len(in.Tasks) == 0:
			return commonops.Invalid(commonops.FieldError{Field: "tasks", Message: "must have at least 1 item"})
		case len(in.Tasks) > operations.MaxBatch:
			return commonops.Invalid(commonops.FieldError{Field: "tasks", Message: "must have at most 1000 items"})
		}
		req := operations.BatchRequest{TenantID: ri.tenant, Requester: ri.user, Items: make([]operations.BatchItem, len(in.Tasks))}
		for n, raw := range in.Tasks {
			var it batchItem
			item := &req.Items[n]
			if item.Err = decodeJSON(raw, &it); item.Err != nil {
				continue
			}
			key := strings.TrimSpace(it.IdempotencyKey)
			if !printableASCII(key) {
				item.Err = commonops.Invalid(commonops.FieldError{Field: "idempotencyKey", Message: "must be printable ASCII"})
				continue
			}
			item.Input, item.IdempotencyKey = it.CreateInput, key
			if key != "" {
				item.RequestHash = requestHash(ri.tenant, raw)
			}
		}
		results, err := s.svc.CreateBatch(r.Context(), req)
		if err != nil {
			return err
		}
		out := batchAnswer{Results: make([]batchResult, len(results))}
		for n, res := range results {
			o := &out.Results[n]
			if res.Err != nil {
				p, _ := s.problemOf(r, res.Err)
				o.Status, o.Problem = p.Status, &p
				out.Failed++
				continue
			}
			c := res.Created
			o.Status, o.ID, o.Replayed = http.StatusCreated, c.Task.ID, res.Replayed
			o.UploadURL, o.UploadMethod, o.UploadHeaders, o.UploadExpiresAt = c.UploadURL, c.UploadMethod, c.UploadHeaders, c.UploadExpiresAt
			out.Created++
		}
		s.writeJSON(w, r, http.StatusOK, out)
		return nil
	})
}
