package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

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

// logsPageSizeDefault is the page length of GET /tasks/{id}/logs without
// ?pageSize.
const logsPageSizeDefault = 100

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
			Page:     q.int("page", 1, 1, operations.MaxPage),
			PageSize: q.int("pageSize", logsPageSizeDefault, 1, operations.LogsPageSizeMax),
		}
		q.fields = append(q.fields, operations.LogProblems(f)...)
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
