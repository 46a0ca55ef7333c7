package httpapi

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/commonops/commonops"
)

// problemBase prefixes the type URI of every problem.
const problemBase = "https://commonops.dev/problems/"

// problemKind is how one error code is answered.
type problemKind struct {
	status int
	slug   string
	title  string
}

// problemKinds is the one table from domain error code to HTTP status.
var problemKinds = map[string]problemKind{
	commonops.EINVALID:      {http.StatusUnprocessableEntity, "invalid", "Invalid request"},
	commonops.EMALFORMED:    {http.StatusBadRequest, "malformed", "Malformed request"},
	commonops.ENOTFOUND:     {http.StatusNotFound, "not-found", "Not found"},
	commonops.ECONFLICT:     {http.StatusConflict, "conflict", "Conflict"},
	commonops.ETOOLARGE:     {http.StatusRequestEntityTooLarge, "too-large", "Too large"},
	commonops.EUNAUTHORIZED: {http.StatusUnauthorized, "unauthorized", "Unauthorized"},
	commonops.EFORBIDDEN:    {http.StatusForbidden, "forbidden", "Forbidden"},
	commonops.ETOOMANY:      {http.StatusTooManyRequests, "too-many-requests", "Too many requests"},
	commonops.ESTORAGEFULL:  {http.StatusInsufficientStorage, "storage-full", "Insufficient storage"},
	commonops.EUNAVAILABLE:  {http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
	commonops.EINTERNAL:     {http.StatusInternalServerError, "internal", "Internal error"},
}

// problem is an RFC 9457 problem document, with the extension members
// commonops uses.
type problem struct {
	Type      string                 `json:"type"`
	Title     string                 `json:"title"`
	Status    int                    `json:"status"`
	Detail    string                 `json:"detail"`
	Instance  string                 `json:"instance,omitempty"`
	RequestID string                 `json:"requestId,omitempty"`
	Errors    []commonops.FieldError `json:"errors,omitempty"`
	// CurrentStatus and CancelRequested tell a refused transition (409) the
	// state the task is really in.
	CurrentStatus   *commonops.Status `json:"currentStatus,omitempty"`
	CancelRequested *bool             `json:"cancelRequested,omitempty"`
}

// problem answers err as a problem. Errors that are not a *commonops.Error,
// and EINTERNAL ones, are logged and answered with a generic detail: a
// client never sees internals.
func (s *server) problem(w http.ResponseWriter, r *http.Request, err error) {
	p, code := s.problemOf(r, err)
	switch code {
	case commonops.EUNAVAILABLE:
		w.Header().Set("Retry-After", retryAfter(err, 5*time.Second))
	case commonops.ETOOMANY:
		w.Header().Set("Retry-After", retryAfter(err, time.Second))
	case commonops.EUNAUTHORIZED:
		w.Header().Set("WWW-Authenticate", `Bearer realm="commonops"`)
	}
	s.writeProblem(w, r, p)
}

// problemOf is the problem document of err and its code, for a response
// or for one item of a batch (which answers a problem per item).
func (s *server) problemOf(r *http.Request, err error) (problem, string) {
	code := commonops.ErrorCode(err)
	kind, ok := problemKinds[code]
	if !ok {
		kind, code = problemKinds[commonops.EINTERNAL], commonops.EINTERNAL
	}
	p := problem{Type: problemBase + kind.slug, Title: kind.title, Status: kind.status}
	switch code {
	case commonops.EINTERNAL:
		s.log.ErrorContext(r.Context(), "internal error", "request_id", info(r).id, "route", info(r).route, "err", err)
		p.Detail = "an unexpected error occurred; quote the request id when reporting it"
	case commonops.EUNAVAILABLE:
		s.log.WarnContext(r.Context(), "dependency unavailable", "request_id", info(r).id, "route", info(r).route, "err", err)
		p.Detail = commonops.ErrorMessage(err)
	default:
		p.Detail = commonops.ErrorMessage(err)
	}
	if e := domainError(err); e != nil {
		p.Errors = e.Fields
		if code == commonops.ECONFLICT && e.Task != nil {
			st, cr := e.Task.Status, e.Task.CancelRequested
			p.CurrentStatus, p.CancelRequested = &st, &cr
		}
	}
	return p, code
}

// retryAfter is the Retry-After value of err: its RetryAfter rounded up to
// whole seconds, or def.
func retryAfter(err error, def time.Duration) string {
	d := def
	if e := domainError(err); e != nil && e.RetryAfter > 0 {
		d = e.RetryAfter
	}
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

// writeProblem writes p as application/problem+json.
func (s *server) writeProblem(w http.ResponseWriter, r *http.Request, p problem) {
	p.Instance = r.URL.Path
	p.RequestID = info(r).id
	body, err := json.Marshal(p)
	if err != nil { // a problem is plain data; this cannot happen
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// writeJSON answers v as JSON with status.
func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var body []byte
	var err error
	if a, ok := v.(jsonAppender); ok {
		body, err = a.AppendJSON(make([]byte, 0, commonops.TaskJSONSize))
	} else {
		body, err = json.Marshal(v)
	}
	if err != nil {
		s.problem(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// jsonAppender is a response that encodes itself as encoding/json would,
// faster (a task, a created task: the answers to the busiest requests).
type jsonAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// apiFunc is a handler that may fail; api turns its error into a problem.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func (s *server) api(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			s.problem(w, r, err)
		}
	})
}
