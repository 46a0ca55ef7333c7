// Package httpapi is the HTTP face of commonops: the task API of docs/design.md §3
// under /api/v1/operations, the worker API, health and readiness probes,
// metrics and the OpenAPI document. Handlers only decode, check what belongs
// to the transport (headers, path ids, query strings, body size and shape),
// call operations.Service and encode; the rules live in the service and the
// root package. Every route is listed in routes.go.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/feed"
	"github.com/commonops/commonops/operations"
)

// Defaults of Config.
const (
	// MaxBodyBytesDefault bounds a request body. 1 MiB.
	MaxBodyBytesDefault = 1 << 20
	// MaxStreamsDefault bounds the event streams open at once in a server.
	MaxStreamsDefault = 1000
	// MaxTenantStreamsDefault bounds one tenant's open event streams.
	MaxTenantStreamsDefault = 100
	// StreamBufferDefault is how many events an event stream may fall
	// behind before it is cut off with a resync event.
	StreamBufferDefault = feed.BufferDefault
	// StreamHeartbeat is how long an event stream stays silent before it
	// sends a comment line, so proxies keep the connection open.
	StreamHeartbeat = 15 * time.Second
	// CheckTimeoutDefault bounds each health and readiness check.
	CheckTimeoutDefault = 2 * time.Second
	// ReadTimeoutDefault bounds reading an API request's body: a client
	// sending it slower gives up its connection.
	ReadTimeoutDefault = 30 * time.Second
	// WriteTimeoutDefault bounds writing an API response (event streams
	// excepted): a client reading it slower gives up its connection.
	WriteTimeoutDefault = 60 * time.Second
)

// Config holds what the API needs. Service is required; every other field is
// optional.
type Config struct {
	// Service carries out the use cases.
	Service *operations.Service
	// Checks are the dependency checks of /api/v1/operations/health, by name:
	// "database", "storage" and "pubsub". Defaults to Service.Ping for
	// "database" and Service.Objects.Check for "storage"; a check that is
	// neither given nor defaulted is reported as skipped.
	Checks map[string]func(context.Context) error
	// Files serves the local object store's signed URLs, mounted at /files/
	// (the handler sees the full path). Defaults to none (404).
	Files http.Handler
	// Metrics serves /metrics. Defaults to none (404).
	Metrics http.Handler
	// Console serves the web console, mounted at /console/ (the handler
	// sees the full path). Defaults to none (404).
	Console http.Handler
	// Registerer receives the request metrics
	// (commonops_http_requests_total, commonops_http_request_duration_seconds).
	// Defaults to nil: no request metrics.
	Registerer prometheus.Registerer
	// Logger receives the access log and the errors behind 500s. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; a larger one is refused with 413.
	// Defaults to MaxBodyBytesDefault (1 MiB).
	MaxBodyBytes int64
	// Ready is an extra readiness check for /readyz, beside the database.
	// Defaults to none.
	Ready func(context.Context) error
	// Feed delivers committed events to the event streams: one reader of
	// the store for the whole process (see package feed), started and
	// stopped by the caller. Defaults to a feed of the Service that the
	// server starts at its first stream and stops when StreamsDone closes.
	Feed *feed.Feed
	// MaxStreams bounds the event streams open at once in this server;
	// one more is refused with 429 and Retry-After. Defaults to
	// MaxStreamsDefault (1,000).
	MaxStreams int
	// MaxTenantStreams bounds the event streams one tenant has open at once
	// in this server; one more is refused with 429 and Retry-After.
	// Defaults to MaxTenantStreamsDefault (100).
	MaxTenantStreams int
	// StreamBuffer is how many events a stream may fall behind (its client
	// reading slower than the task changes) before it ends with a resync
	// event, on which the client reconnects with Last-Event-ID. Defaults to
	// StreamBufferDefault (1,000).
	StreamBuffer int
	// CheckTimeout bounds each health and readiness check; a check that has
	// not answered by then is reported down. Defaults to
	// CheckTimeoutDefault (2s).
	CheckTimeout time.Duration
	// StreamsDone, when closed, ends every open event stream: streams do not
	// finish on their own, so a graceful shutdown closes it (see
	// http.Server.RegisterOnShutdown) to let in-flight requests drain.
	// Defaults to nil: streams end only with their request.
	StreamsDone <-chan struct{}
	// ReadTimeout bounds reading each API request, body included, counted
	// from its start; the local store's /files/ routes set their own
	// deadlines from a minimum transfer rate. Defaults to
	// ReadTimeoutDefault (30s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing each API response but event streams.
	// Defaults to WriteTimeoutDefault (60s).
	WriteTimeout time.Duration
	// Auth authenticates the requests of the gateway and oidc modes (API
	// keys included). Defaults to nil: the none mode, where X-Tenant-Id
	// and X-User-Id name a principal holding every role.
	Auth *auth.Authenticator
	// RateLimit is the requests per second one principal (API key, token
	// subject or user) may make, in bursts of RateBurst; TenantRateLimit
	// and TenantRateBurst are the same for all the principals of a tenant
	// together. Token buckets in memory: the limits hold per replica. A
	// request past one is answered 429 with Retry-After before any
	// database work. Zero or negative: no limit. Default to none here (the
	// app sets its own defaults when auth is on).
	RateLimit       float64
	RateBurst       int
	TenantRateLimit float64
	TenantRateBurst int
	// Now is the clock of the rate limits. Defaults to time.Now.
	Now func() time.Time
}

// server is what every handler shares.
type server struct {
	svc      *operations.Service
	log      *slog.Logger
	maxBody  int64
	feed     *feed.Feed
	ownFeed  bool      // feed was made here: subscribe starts it
	feedOnce sync.Once // starts an own feed
	streams  *streamCounts
	buffer   int // Config.StreamBuffer
	timeout  time.Duration
	checks   map[string]func(context.Context) error
	ready    func(context.Context) error
	files    http.Handler
	metrics  http.Handler
	console  http.Handler
	observer *observer
	done     <-chan struct{} // closes open event streams at shutdown
	readTO   time.Duration
	writeTO  time.Duration
	auth     *auth.Authenticator // nil: the none mode
	// perPrincipal and perTenant are the rate limits.
	perPrincipal, perTenant *limiter
}

// NewServer returns the HTTP handler of the whole API. It panics if
// cfg.Service is nil, a wiring mistake.
func NewServer(cfg Config) http.Handler {
	if cfg.Service == nil {
		panic("httpapi: Config.Service is required")
	}
	s := &server{
		svc:     cfg.Service,
		log:     cfg.Logger,
		maxBody: cfg.MaxBodyBytes,
		feed:    cfg.Feed,
		streams: &streamCounts{max: cfg.MaxStreams, maxTenant: cfg.MaxTenantStreams},
		buffer:  cfg.StreamBuffer,
		timeout: cfg.CheckTimeout,
		ready:   cfg.Ready,
		files:   cfg.Files,
		metrics: cfg.Metrics,
		console: cfg.Console,
		checks:  map[string]func(context.Context) error{},
		done:    cfg.StreamsDone,
		readTO:  cfg.ReadTimeout,
		writeTO: cfg.WriteTimeout,
		auth:    cfg.Auth,
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s.perPrincipal = newLimiter(cfg.RateLimit, cfg.RateBurst, now)
	s.perTenant = newLimiter(cfg.TenantRateLimit, cfg.TenantRateBurst, now)
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxBody <= 0 {
		s.maxBody = MaxBodyBytesDefault
	}
	if s.feed == nil {
		s.feed, s.ownFeed = feed.New(cfg.Service, feed.Config{Logger: s.log}), true
	}
	if s.buffer <= 0 {
		s.buffer = StreamBufferDefault
	}
	if s.streams.max <= 0 {
		s.streams.max = MaxStreamsDefault
	}
	if s.streams.maxTenant <= 0 {
		s.streams.maxTenant = MaxTenantStreamsDefault
	}
	if s.timeout <= 0 {
		s.timeout = CheckTimeoutDefault
	}
	if s.readTO <= 0 {
		s.readTO = ReadTimeoutDefault
	}
	if s.writeTO <= 0 {
		s.writeTO = WriteTimeoutDefault
	}
	s.checks["database"] = cfg.Service.Ping
	if obj := cfg.Service.Objects; obj != nil {
		s.checks["storage"] = obj.Check
	}
	for name, check := range cfg.Checks {
		if check != nil {
			s.checks[name] = check
		}
	}
	s.observer = newObserver(cfg.Registerer)

	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mustDeclare(rt)
		mux.Handle(rt.pattern(), s.instrument(rt))
	}
	return s.outer(mux)
}
