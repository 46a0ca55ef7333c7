package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/internal/prom"
	"github.com/commonops/commonops/internal/tracing"
	"github.com/commonops/commonops/operations"
)

// requestInfo is what the middleware learns about a request as it goes; the
// outermost layer logs and counts it when the request ends.
type requestInfo struct {
	id     string
	route  string // the ServeMux pattern; "" when no route matched
	tenant string
	user   string
	actor  string // who the request runs as (auth.Principal.Actor); "" before authentication
}

type infoKey struct{}

// info returns the request's requestInfo; every request through NewServer
// has one.
func info(r *http.Request) *requestInfo {
	if i, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{tenant: commonops.DefaultTenant, user: commonops.DefaultTenant}
}

// MaxRequestIDLen bounds an X-Request-Id taken from the client; a longer or
// unprintable one is replaced by a generated id.
const MaxRequestIDLen = 128

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= MaxRequestIDLen && printableASCII(id) {
		return id
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// traceParent returns the request's W3C traceparent header when it is one
// valid version 00 value, else "": an invalid, unknown-version or repeated
// header is ignored, as the Trace Context spec tells a receiver to do.
func traceParent(r *http.Request) string {
	vs := r.Header.Values("traceparent")
	if len(vs) != 1 || !commonops.ValidTraceParent(vs[0]) {
		return ""
	}
	return vs[0]
}

// outer wraps the whole mux: request id, panic recovery, problem answers for
// unknown routes and methods, the access log and the request metrics. A
// valid traceparent header goes into the request context
// (commonops.WithTraceParent), so the outbox rows the request writes carry it;
// with tracing on, the request's span takes its place.
func (s *server) outer(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{id: requestID(r)}
		w.Header().Set("X-Request-Id", ri.id)
		ctx := context.WithValue(r.Context(), infoKey{}, ri)
		if tp := traceParent(r); tp != "" {
			ctx = commonops.WithTraceParent(ctx, tp)
		}
		// With tracing on, the request's span continues that traceparent
		// and replaces it in ctx; logAndCount ends it.
		ctx, _ = tracing.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer))
		r = r.WithContext(ctx)
		rec := &recorder{ResponseWriter: w}
		s.deadlines(w, r, start)
		defer func() {
			v := recover()
			if v == nil {
				s.logAndCount(r, ri, rec, time.Since(start))
				return
			}
			if v != http.ErrAbortHandler { //nolint:errorlint // a sentinel value, not a wrapped error
				s.log.ErrorContext(r.Context(), "handler panic", "request_id", ri.id, "route", ri.route,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
			if rec.status != 0 {
				// Part of the answer is out: abort the connection so the
				// client cannot take it for a complete one.
				s.logAndCount(r, ri, rec, time.Since(start))
				panic(http.ErrAbortHandler)
			}
			s.problem(rec, r, errors.New("handler panic"))
			s.logAndCount(r, ri, rec, time.Since(start))
		}()
		h, pattern := mux.Handler(r)
		if pattern == "" {
			// No route: the mux answers 404 or 405 in plain text; answer a
			// problem instead, keeping its Allow header.
			h.ServeHTTP(&unmatched{ResponseWriter: rec, s: s, r: r}, r)
			return
		}
		mux.ServeHTTP(rec, r)
	})
}

// deadlines bounds the time a client may take to send its request and to
// read the answer, so slow or stalled clients give their connection up
// (the server has no global timeouts: file bodies and event streams run
// long). The local store's /files/ routes enforce a minimum rate instead,
// and an event stream has no deadline; both start from none, not from one a
// previous request on the same connection left.
func (s *server) deadlines(w http.ResponseWriter, r *http.Request, start time.Time) {
	rc := http.NewResponseController(w)
	// Errors: only a writer without a connection (a test recorder) refuses.
	if strings.HasPrefix(r.URL.Path, "/files/") || wantsStream(r) {
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		return
	}
	_ = rc.SetReadDeadline(start.Add(s.readTO))
	_ = rc.SetWriteDeadline(start.Add(s.writeTO))
}

func (s *server) logAndCount(r *http.Request, ri *requestInfo, rec *recorder, d time.Duration) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	route := ri.route
	if route == "" {
		route = "unmatched"
	}
	s.observer.observe(route, status, d)
	if tracing.Enabled() {
		endSpan(r, route, status)
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(r.Context(), level, "request",
		slog.String("request_id", ri.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int64("bytes", rec.bytes),
		slog.String("tenant", ri.tenant),
		slog.String("actor", ri.actor),
	)
}

// endSpan names the request's span after its route pattern ("POST
// /api/v1/operations/tasks") and ends it, failed on a 5xx answer.
func endSpan(r *http.Request, route string, status int) {
	span := trace.SpanFromContext(r.Context())
	span.SetName(route)
	span.SetAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("http.route", route),
		attribute.Int("http.response.status_code", status),
	)
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// instrument wraps one route: it names the route for the log and metrics
// and, for every route but the public ones, authenticates the request,
// applies the rate limits and checks the route's policy before the handler
// runs.
func (s *server) instrument(rt route) http.Handler {
	pattern := rt.pattern()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := info(r)
		ri.route = pattern
		if !rt.policy.public {
			ctx, err := s.admit(r, rt.policy)
			if err != nil {
				s.problem(w, r, err)
				return
			}
			r = r.WithContext(ctx)
		}
		rt.handler.ServeHTTP(w, r)
	})
}

// admit establishes r's principal, spends its rate-limit tokens and checks
// pol, and returns the context the handler runs with: it carries the
// principal, its actor (recorded on the task events it causes) and its
// operations.Scope.
func (s *server) admit(r *http.Request, pol policy) (context.Context, error) {
	ri := info(r)
	p, err := s.principal(r)
	if err != nil {
		return nil, err
	}
	ri.tenant, ri.user, ri.actor = p.Tenant, p.Subject, p.Actor()
	if err := s.perPrincipal.take(ri.actor, "this caller"); err != nil {
		return nil, err
	}
	if err := s.perTenant.take(p.Tenant, "tenant "+p.Tenant); err != nil {
		return nil, err
	}
	sc, err := pol.scope(p)
	if err != nil {
		return nil, err
	}
	ctx := commonops.WithActor(auth.WithPrincipal(r.Context(), p), ri.actor)
	if sc.OwnedBy != "" || len(sc.TaskTypes) > 0 {
		ctx = operations.WithScope(ctx, sc)
	}
	return ctx, nil
}

// principal is who r runs as. In the none mode the identity headers name
// it, with every role; otherwise the Authenticator establishes it, and an
// X-Tenant-Id naming another tenant than the credential's is EFORBIDDEN
// unless the principal is a platform admin, who acts in that tenant.
func (s *server) principal(r *http.Request) (*auth.Principal, error) {
	if s.auth == nil {
		tenant, user, err := identity(r)
		if err != nil {
			return nil, err
		}
		return &auth.Principal{Tenant: tenant, Subject: user, Mode: auth.ModeNone, Roles: auth.Roles, PlatformAdmin: true}, nil
	}
	p, err := s.auth.Authenticate(r)
	if err != nil {
		return nil, err
	}
	header := s.auth.TenantHeader()
	want := strings.TrimSpace(r.Header.Get(header))
	if want == "" || want == p.Tenant {
		return p, nil
	}
	if !p.PlatformAdmin {
		return nil, commonops.Errorf(commonops.EFORBIDDEN, "%s names another tenant than the credential's; only a platform admin acts in other tenants", header)
	}
	if len(want) > MaxIdentityLen || !commonops.Printable(want) {
		return nil, commonops.Invalid(commonops.FieldError{Field: header, Message: fmt.Sprintf("must be at most %d printable characters", MaxIdentityLen)})
	}
	in := *p
	in.Tenant = want
	return &in, nil
}

// recorder remembers the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines) through the recorder.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unmatched turns the mux's plain-text 404 and 405 into problems.
type unmatched struct {
	http.ResponseWriter
	s        *server
	r        *http.Request
	replaced bool
}

func (u *unmatched) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		u.replaced = true
		u.s.problem(u.ResponseWriter, u.r, commonops.Errorf(commonops.ENOTFOUND, "no route for %s %s", u.r.Method, u.r.URL.Path))
	case http.StatusMethodNotAllowed:
		u.replaced = true
		u.s.writeProblem(u.ResponseWriter, u.r, problem{
			Type: problemBase + "method-not-allowed", Title: "Method not allowed", Status: code,
			Detail: fmt.Sprintf("%s is not allowed on %s; allowed: %s", u.r.Method, u.r.URL.Path, u.Header().Get("Allow")),
		})
	default:
		u.ResponseWriter.WriteHeader(code)
	}
}

func (u *unmatched) Write(b []byte) (int, error) {
	if u.replaced {
		return len(b), nil
	}
	return u.ResponseWriter.Write(b)
}

// observer holds the request metrics; a nil observer counts nothing.
type observer struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newObserver(reg prometheus.Registerer) *observer {
	if reg == nil {
		return nil
	}
	o := &observer{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commonops_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "commonops_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	o.requests = prom.Register(reg, o.requests)
	o.duration = prom.Register(reg, o.duration)
	return o
}

func (o *observer) observe(route string, status int, d time.Duration) {
	if o == nil {
		return
	}
	o.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	o.duration.WithLabelValues(route).Observe(d.Seconds())
}
