package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// MaxWorkerIDLen bounds a claiming worker's id.
const MaxWorkerIDLen = 128

// claimBody is the JSON of POST /tasks/{id}/claim.
type claimBody struct {
	WorkerID     string `json:"workerId"`
	LeaseSeconds int    `json:"leaseSeconds"`
}

// handleClaim serves POST /tasks/{id}/claim: 200 with the task, now
// processing on a new attempt, or 409 when it is not claimable.
func handleClaim(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		var in claimBody
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
		var fields []commonops.FieldError
		switch {
		case in.WorkerID == "":
			fields = append(fields, commonops.FieldError{Field: "workerId", Message: "is required"})
		case len(in.WorkerID) > MaxWorkerIDLen || !printable(in.WorkerID):
			fields = append(fields, commonops.FieldError{Field: "workerId", Message: fmt.Sprintf("must be printable text of at most %d characters", MaxWorkerIDLen)})
		}
		if maxLease := int(operations.LeaseMax / time.Second); in.LeaseSeconds < 0 || in.LeaseSeconds > maxLease {
			fields = append(fields, commonops.FieldError{Field: "leaseSeconds", Message: fmt.Sprintf("must be from 0 (the default lease) to %d", maxLease)})
		}
		if len(fields) > 0 {
			return commonops.Invalid(fields...)
		}
		t, err := s.svc.Claim(r.Context(), info(r).tenant, id, in.WorkerID, in.LeaseSeconds)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, t)
		return nil
	})
}

// handleProgress serves PATCH /tasks/{id}/progress: a worker's report,
// answered with the task (whose cancelRequested tells the worker to stop).
func handleProgress(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		var p commonops.Progress
		if err := s.decode(w, r, &p); err != nil {
			return err
		}
		t, err := s.svc.Progress(r.Context(), info(r).tenant, id, p)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, t)
		return nil
	})
}

// logsBody is the JSON of POST /tasks/{id}/logs.
type logsBody struct {
	Attempt *int      `json:"attempt"`
	Logs    []logLine `json:"logs"`
}

type logLine struct {
	Level   commonops.LogLevel `json:"level"`
	Message string             `json:"message"`
	Details json.RawMessage    `json:"details"`
}

// handleAppendLogs serves POST /tasks/{id}/logs: 201 with how many lines
// were added.
func handleAppendLogs(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		var in logsBody
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
		if in.Attempt != nil && *in.Attempt < 1 {
			return commonops.Invalid(commonops.FieldError{Field: "attempt", Message: "must be at least 1"})
		}
		entries := make([]commonops.LogEntry, len(in.Logs))
		for i, l := range in.Logs {
			entries[i] = commonops.LogEntry{Level: l.Level, Message: l.Message, Details: l.Details}
		}
		if err := s.svc.AppendLogs(r.Context(), info(r).tenant, id, in.Attempt, entries); err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusCreated, map[string]int{"accepted": len(entries)})
		return nil
	})
}

// logsPage is the answer of GET /tasks/{id}/logs.
type logsPage struct {
	Logs  []commonops.LogEntry `json:"logs"`
	Total int                  `json:"total"`
}

// Paging of GET /tasks/{id}/logs.
const (
	logsPageSizeDefault = 100
	logsPageSizeMax     = 1000
)

// handleListLogs serves GET /tasks/{id}/logs?level=&page=&pageSize=.
func handleListLogs(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		q := newQuery(r)
		f := commonops.LogFilter{
			TenantID: info(r).tenant,
			TaskID:   id,
			Level:    commonops.LogLevel(q.str("level", 16)),
			Page:     q.int("page", 1, 1, maxPage),
			PageSize: q.int("pageSize", logsPageSizeDefault, 1, logsPageSizeMax),
		}
		if f.Level != "" && !f.Level.Valid() {
			q.fail("level", "must be debug, info, warn or error")
		}
		if err := q.err(); err != nil {
			return err
		}
		logs, total, err := s.svc.Logs(r.Context(), f)
		if err != nil {
			return err
		}
		if logs == nil {
			logs = []commonops.LogEntry{}
		}
		s.writeJSON(w, r, http.StatusOK, logsPage{Logs: logs, Total: total})
		return nil
	})
}

// outputURLBody is the JSON of POST /tasks/{id}/output-url.
type outputURLBody struct {
	FileName    string `json:"fileName"`
	ContentType string `json:"contentType"`
	Attempt     *int   `json:"attempt"`
}

// outputURL is the answer of POST /tasks/{id}/output-url.
type outputURL struct {
	UploadURL     string            `json:"uploadUrl"`
	UploadMethod  string            `json:"uploadMethod"`
	UploadHeaders map[string]string `json:"uploadHeaders"`
	ExpiresAt     time.Time         `json:"expiresAt"`
}

// handleOutputURL serves POST /tasks/{id}/output-url: a pre-signed URL for
// the worker of the current attempt to upload its output to.
func handleOutputURL(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		var in outputURLBody
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
		var fields []commonops.FieldError
		if in.FileName == "" {
			fields = append(fields, commonops.FieldError{Field: "fileName", Message: "is required"})
		}
		if len(in.ContentType) > commonops.MaxContentTypeLen || !printable(in.ContentType) {
			fields = append(fields, commonops.FieldError{Field: "contentType", Message: fmt.Sprintf("must be a media type of at most %d characters", commonops.MaxContentTypeLen)})
		}
		if in.Attempt != nil && *in.Attempt < 1 {
			fields = append(fields, commonops.FieldError{Field: "attempt", Message: "must be at least 1"})
		}
		if len(fields) > 0 {
			return commonops.Invalid(fields...)
		}
		if s.svc.Objects == nil {
			return commonops.Errorf(commonops.EUNAVAILABLE, "file storage is not configured")
		}
		u, err := s.svc.OutputURL(r.Context(), info(r).tenant, id, in.Attempt, in.FileName, in.ContentType)
		if err != nil {
			return err
		}
		headers := u.Headers
		if headers == nil {
			headers = map[string]string{}
		}
		s.writeJSON(w, r, http.StatusOK, outputURL{UploadURL: u.URL, UploadMethod: u.Method, UploadHeaders: headers, ExpiresAt: u.ExpiresAt.UTC()})
		return nil
	})
}
