// Package app is the stock commonops server as a Go value: the store, the
// object store, pub/sub, the outbox relay, the built-in worker with its
// processors, maintenance and the HTTP API, wired from one Config. The
// `commonops serve` command is a thin shell around it, and a Go team runs
// the same server with processors of its own:
//
//	a, err := app.New(ctx, app.Config{})
//	if err != nil { ... }
//	a.Register("greet", "*", worker.ProcessorFunc(greet))
//	err = a.Run(ctx) // serves until ctx ends, then stops gracefully
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/bulk"
	"github.com/commonops/commonops/bus"
	"github.com/commonops/commonops/console"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/feed"
	"github.com/commonops/commonops/httpapi"
	"github.com/commonops/commonops/maintenance"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/webhook"
	"github.com/commonops/commonops/worker"
)

// ReadHeaderTimeout bounds the arrival of a request's header.
const ReadHeaderTimeout = 10 * time.Second

// OrphanEventAge is how old an unsent outbox row must be before a process
// without the worker role, on PostgreSQL with the embedded bus, takes it off
// the queue unpublished (its bus has no subscriber). Rows the workers'
// relays publish go within milliseconds; this only bounds the outbox when
// no process runs the worker role (remote workers poll) or none is up.
const OrphanEventAge = time.Minute

// App is one commonops process. New opens its dependencies, Start serves,
// Stop (or the end of Run's context) shuts it down gracefully.
type App struct {
	cfg   Config
	log   *slog.Logger
	roles map[string]bool
	reg   *prometheus.Registry

	ln        net.Listener
	publicURL string
	store     store.Store
	storeName string
	svc       *operations.Service
	registry  *worker.Registry
	relay     *outbox.Relay
	hooks     *webhook.Dispatcher // nil without a webhook secret
	feed      *feed.Feed          // committed events, for the API's event streams
	pool      *worker.Pool        // nil without the worker role
	runner    *maintenance.Runner
	bus       *bus.Bus // nil on Dapr
	handler   http.Handler
	daprLn    net.Listener // the Dapr subscription routes; nil unless Dapr delivers to a worker
	daprSrv   *http.Server
	keys      *auth.Keys // API keys; nil in the none mode

	draining atomic.Bool // Stop has begun: GET /readyz answers 503

	mu          sync.Mutex
	started     bool
	stopped     bool
	unsubscribe func()
	srv         *http.Server
	debug       *http.Server
	served      chan error
	streamsDone chan struct{}
	cancelRun   context.CancelFunc
}

// New opens everything cfg names and binds the listen address, but serves
// nothing until Start. Processors registered with Register before or after
// Start are claimed from the next poll on. On error nothing is left open.
func New(ctx context.Context, cfg Config) (a *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a = &App{cfg: cfg, log: cfg.Logger, streamsDone: make(chan struct{})}
	a.roles, _ = parseRoles(cfg.Roles)
	defer func() {
		if err != nil {
			a.close()
		}
	}()

	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	a.ln = netutil.LimitListener(a.ln, cfg.MaxConnections)
	a.publicURL = cfg.PublicURL
	if a.publicURL == "" {
		a.publicURL = fmt.Sprintf("http://localhost:%d", a.ln.Addr().(*net.TCPAddr).Port)
	}

	if a.store, a.storeName, err = OpenStore(ctx, cfg, a.reg); err != nil {
		return nil, err
	}
	a.svc = &operations.Service{
		Store:     a.store,
		Limits:    commonops.Limits{MaxParamsBytes: cfg.MaxParamsBytes, MaxFileSize: cfg.MaxFileSize},
		Lease:     cfg.Lease,
		URLExpiry: cfg.URLExpiry,
		Quotas:    cfg.quotas(),

		TaskTimeouts: cfg.TaskTimeouts,
	}
	a.svc.FairWeights, _ = operations.ParseFairWeights(cfg.FairWeights) // checked by Validate
	a.svc.FairHalfLife = cfg.FairHalfLife
	limits, _ := operations.ParseFlowLimits(cfg.FlowLimits)
	if err := a.svc.SeedFlowControls(ctx, limits); err != nil {
		return nil, err
	}
	a.reg.MustRegister(newQueueCollector(a.svc, a.log))
	objects, files, err := openObjects(ctx, cfg, a.publicURL, a.svc)
	if err != nil {
		return nil, err
	}
	a.svc.Objects = objects
	if cfg.WebhookSecret != "" {
		guard, err := cfg.webhookGuard()
		if err != nil {
			return nil, err
		}
		a.svc.Webhooks = guard
		// Every process sends the deliveries: the store hands each to one
		// dispatcher at a time.
		a.hooks = webhook.New(a.store, webhook.Config{
			Secret: cfg.WebhookSecret, Guard: guard, Timeout: cfg.WebhookTimeout,
			Signal: a.svc.DeliverySignal, Logger: a.log, Registerer: a.reg,
		})
		a.reg.MustRegister(webhook.NewBacklogCollector(a.store, nil, a.log))
	}

	// Pub/sub: the outbox relay publishes committed events to the embedded
	// bus or to the Dapr sidecar.
	var publisher outbox.Publisher
	pubsubCheck := func(context.Context) error { return nil }
	if cfg.PubSub == PubSubDapr {
		p := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: cfg.DaprURL, PubSubName: cfg.DaprPubSub,
			BroadcastPubSubName: cfg.DaprBroadcastPubSub, APIToken: cfg.DaprAPIToken})
		publisher, pubsubCheck = p, p.Check
	} else {
		a.bus = bus.New(bus.WithLogger(a.log), bus.WithRegisterer(a.reg))
		publisher = a.bus
	}
	relayCfg := outbox.Config{Logger: a.log, Registerer: a.reg}
	if a.bus != nil && !a.roles[RoleWorker] && a.storeName == storePostgres {
		// The embedded bus reaches this process only, and without the
		// worker role nothing here subscribes: the rows are left to the
		// relays of the processes with workers, which the outbox NOTIFY
		// wakes. This one only clears out rows none of them took (no
		// process runs the worker role, only remote workers).
		relayCfg.MinAge, relayCfg.PollInterval = OrphanEventAge, OrphanEventAge
	}
	a.relay = outbox.NewRelay(a.store, publisher, relayCfg)

	a.registry = worker.NewRegistry()
	// The entity configuration: the worker registers its processors, and
	// the API refuses at create what they could never run. An API without
	// the worker role checks only with a configuration file, as its
	// workers may be configured where it cannot see.
	var entities *bulk.Config
	if a.roles[RoleWorker] || a.roles[RoleAPI] && cfg.ConfigFile != "" {
		if entities, err = loadEntities(cfg); err != nil {
			return nil, err
		}
		a.svc.Validators = bulkValidators(entities, a.registry)
	}
	var daprHandler http.Handler
	if a.roles[RoleWorker] {
		if err := registerBuiltins(a.registry, entities, a.svc); err != nil {
			return nil, err
		}
		a.pool = worker.NewPool(worker.Config{
			Service: a.svc, Registry: a.registry,
			Concurrency: cfg.WorkerConcurrency, TypeConcurrency: cfg.WorkerTypeConcurrency,
			PollInterval: cfg.PollInterval, StopTimeout: cfg.ShutdownTimeout,
			Logger: a.log, Registerer: a.reg,
		})
		if a.bus == nil {
			daprHandler = dapr.NewSubscriber(dapr.SubscriberConfig{
				PubSubName: cfg.DaprPubSub, BroadcastPubSubName: cfg.DaprBroadcastPubSub,
				Handle: a.pool.HandleEvent, AppToken: cfg.DaprAppToken,
				Logger: a.log, Registerer: a.reg,
			})
			if a.daprLn, err = net.Listen("tcp", cfg.DaprAppAddr); err != nil {
				return nil, fmt.Errorf("listen for Dapr deliveries on %s: %w", cfg.DaprAppAddr, err)
			}
			if cfg.DaprAppToken == "" && !loopback(a.daprLn.Addr()) {
				a.log.Warn("Dapr deliveries are accepted from the network without a token: set APP_API_TOKEN on the sidecar and here, or listen on loopback",
					"daprAppAddr", a.daprLn.Addr().String())
			}
		}
	}
	if a.roles[RoleMaintenance] {
		a.runner = maintenance.New(maintenance.Config{
			Service:             a.svc,
			UploadSweepInterval: cfg.UploadSweepInterval, UnclaimedTimeout: cfg.UnclaimedTimeout,
			RetentionCompleted: cfg.RetentionCompleted, RetentionFailed: cfg.RetentionFailed,
			RetentionCancelled: cfg.RetentionCancelled, OutboxRetention: cfg.OutboxRetention,
			Logger: a.log, Registerer: a.reg,
		})
	}

	checks := map[string]func(context.Context) error{
		"database": a.store.Ping,
		"storage":  objects.Check,
		"pubsub":   pubsubCheck,
	}
	metrics := promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})
	if a.roles[RoleAPI] {
		a.feed = feed.New(a.svc, feed.Config{Logger: a.log})
		authn, verifier, err := a.authenticator(ctx)
		if err != nil {
			return nil, err
		}
		consoleOIDC, err := a.consoleOIDC(verifier)
		if err != nil {
			return nil, err
		}
		if consoleOIDC != nil {
			a.log.Info("console log-in with the OIDC issuer: register this redirect URI for its client",
				"issuer", consoleOIDC.Issuer, "clientId", consoleOIDC.ClientID, "redirectUri", console.CallbackURL(a.publicURL))
		}
		// The console calls the API handler it is mounted in, as its user,
		// and its new-task page uploads to the S3 store's origin.
		var api http.Handler
		var connect []string
		if s3, ok := objects.(*objectstore.S3); ok {
			connect = []string{s3.URLSource()}
		}
		cons := console.New(console.Config{API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.ServeHTTP(w, r) }),
			Logger: a.log, PublicURL: a.publicURL, OIDC: consoleOIDC, ConnectOrigins: connect})
		api = httpapi.NewServer(httpapi.Config{
			Service: a.svc, Checks: checks, Files: files, Metrics: metrics, Feed: a.feed, Console: cons,
			MaxStreams: cfg.MaxStreams, MaxTenantStreams: cfg.MaxTenantStreams,
			Logger: a.log, MaxBodyBytes: cfg.MaxBodyBytes, Registerer: a.reg, StreamsDone: a.streamsDone,
			Auth: authn, RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst,
			TenantRateLimit: cfg.TenantRateLimit, TenantRateBurst: cfg.TenantRateBurst,
		})
		a.handler = api
	} else {
		a.handler = internalMux(checks["database"], files, metrics)
	}
	a.handler = a.unreadyWhileDraining(a.handler)
	if daprHandler != nil {
		a.daprSrv = &http.Server{Handler: daprHandler, ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	}
	return a, nil
}

// registerBuiltins registers the processors every commonops worker has:
// the configured import and export entities, the task-history export, and
// noop, which completes at once, or after params.sleepMs (at most
// noopSleepMax; a canary for the whole pipeline and the unit of the
// benchmarks).
func registerBuiltins(r *worker.Registry, entities *bulk.Config, svc *operations.Service) error {
	if err := registerBulk(r, entities, svc); err != nil {
		return err
	}
	r.Register("noop", "*", worker.ProcessorFunc(noop))
	return nil
}

// noopSleepMax bounds the wait of a noop task.
const noopSleepMax = 10 * time.Second

// noop completes after params.sleepMs, if the task has it: the benchmarks'
// stand-in for a task that takes time.
func noop(ctx context.Context, job worker.Job) error {
	var p struct {
		SleepMs int `json:"sleepMs"`
	}
	if json.Unmarshal(job.Task().Params, &p) != nil || p.SleepMs <= 0 {
		return nil
	}
	select {
	case <-time.After(min(time.Duration(p.SleepMs)*time.Millisecond, noopSleepMax)):
	case <-ctx.Done():
	}
	return nil
}

// Register adds a processor for (taskType, entityType) ("*" matches any) to
// the built-in worker. It panics on a duplicate pair or when the process
// does not run the worker role: both are wiring mistakes.
func (a *App) Register(taskType, entityType string, p worker.Processor) {
	if a.pool == nil {
		panic("app: Register needs the worker role")
	}
	a.registry.Register(taskType, entityType, p)
}

// Service is the use-case layer the API and the worker share, for Go code
// that creates or reads tasks in-process.
func (a *App) Service() *operations.Service { return a.svc }

// Handler is the process's whole HTTP surface (the API, or only probes,
// metrics, files and Dapr routes without the api role), for tests that
// serve it themselves.
func (a *App) Handler() http.Handler { return a.handler }

// Addr is the bound listen address (the real port when Config.Addr had 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// DaprAppAddr is the bound address of the Dapr subscription routes, or ""
// when this process takes no Dapr deliveries.
func (a *App) DaprAppAddr() string {
	if a.daprLn == nil {
		return ""
	}
	return a.daprLn.Addr().String()
}

// loopback reports whether addr only accepts connections from this machine.
func loopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// URL is the base URL clients use: Config.PublicURL or http://localhost:PORT.
func (a *App) URL() string { return a.publicURL }

// Start starts the background roles and serves HTTP; it returns at once.
// The start-up log line carries the bound address.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.stopped {
		return errors.New("app: Start called twice or after Stop")
	}
	a.started = true
	// The background roles outlive ctx: Stop ends them in order, so that a
	// cancelled ctx (SIGTERM) is a graceful stop, not a kill.
	var runCtx context.Context
	runCtx, a.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	if a.bus != nil && a.pool != nil {
		// Events are hints the pool checks against the store: handled
		// side by side, a claim waiting for the database does not hold
		// back the events behind it.
		a.unsubscribe = a.bus.SubscribeConcurrent(commonops.WorkerTopics, a.pool.Concurrency(), func(ctx context.Context, m bus.Message) error {
			return a.pool.HandleEvent(commonops.WithTraceParent(ctx, m.TraceParent), m.Topic, m.Task)
		})
	}
	a.relay.Start(runCtx)
	if a.hooks != nil {
		a.hooks.Start(runCtx)
	}
	if a.keys != nil {
		a.keys.Start(runCtx)
	}
	if a.feed != nil {
		a.feed.Start(runCtx)
	}
	if a.pool != nil {
		a.pool.Start(runCtx)
	}
	if a.runner != nil {
		a.runner.Start(runCtx)
	}
	if a.cfg.DebugAddr != "" {
		a.debug = &http.Server{Addr: a.cfg.DebugAddr, Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := a.debug.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Warn("debug server", "err", err)
			}
		}()
	}
	// Slow clients: the header must arrive within ReadHeaderTimeout, idle
	// keep-alives close after IdleTimeout, and the API bounds each request's
	// body and answer (httpapi.Config.ReadTimeout, WriteTimeout); file
	// bodies and event streams, which run long, police themselves.
	a.srv = &http.Server{Handler: a.handler, ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: a.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	a.srv.RegisterOnShutdown(func() { close(a.streamsDone) })
	a.served = make(chan error, 2)
	go func() { a.served <- a.srv.Serve(a.ln) }()
	if a.daprSrv != nil {
		go func() { a.served <- a.daprSrv.Serve(a.daprLn) }()
	}
	a.log.Info("commonops started", "addr", a.Addr(), "roles", a.cfg.Roles, "store", a.storeName,
		"storage", a.cfg.Storage, "pubsub", a.cfg.PubSub, "published", a.published(), "daprAppAddr", a.DaprAppAddr(), "publicUrl", a.publicURL,
		"auth", a.cfg.Auth, "version", a.cfg.Version)
	if a.cfg.Auth == string(auth.ModeNone) && a.roles[RoleAPI] && !loopback(a.ln.Addr()) {
		a.log.Warn("THE API IS OPEN: auth is none and the API listens beyond this machine, so anyone who reaches "+a.Addr()+
			" can read, cancel and delete any tenant's tasks and act as a worker; set COMMONOPS_AUTH=gateway or oidc (see the README, Identity and access), or listen on 127.0.0.1",
			"addr", a.Addr())
	}
	return nil
}

// published names the topics this process queues for its bus (see
// Config.busTopics), for the start-up log.
func (a *App) published() string {
	topics, _ := a.cfg.busTopics() // checked by Validate
	if topics == nil {
		topics = commonops.Topics
	}
	short := make([]string, len(topics))
	for i, t := range topics {
		short[i] = strings.TrimPrefix(t, "operations.task.")
	}
	return strings.Join(short, ",")
}

// Run starts the app, serves until ctx ends, then stops it gracefully
// within Config.ShutdownTimeout. It returns an error only when the app
// could not start or the HTTP server failed.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		a.Stop()
		return err
	}
	select {
	case err := <-a.served:
		a.Stop()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	a.Stop()
	return nil
}

// Stop shuts down gracefully: it stops accepting requests and lets
// in-flight ones finish, stops claiming, lets running tasks finish and
// hands back those still running when Config.ShutdownTimeout runs out (no
// retry is counted), stops the outbox relay (with the embedded bus before
// the worker: unpublished rows stay for another process) and closes the
// store. Calling it again, or without Start, is harmless.
func (a *App) Stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	started := a.started
	a.mu.Unlock()
	if !started {
		a.close()
		return
	}
	a.draining.Store(true)
	if a.cfg.DrainDelay > 0 {
		// Still serving, but unready: load balancers take the replica out
		// of rotation before it stops accepting connections.
		a.log.Info("draining: readyz answers 503", "drainDelay", a.cfg.DrainDelay.String())
		time.Sleep(a.cfg.DrainDelay)
	}
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if a.bus != nil {
		// The embedded bus hands events to this process's worker only,
		// which is about to stop: what is committed from now on stays in
		// the outbox for another process's relay (or this one's after a
		// restart) instead of being taken off to no one.
		a.relay.Stop()
	}
	// Requests drain while the worker stops claiming and its running tasks
	// finish (the pool's StopTimeout is ShutdownTimeout): one deadline
	// bounds both.
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			a.log.Warn("http shutdown", "err", err)
		}
	})
	if a.daprSrv != nil {
		wg.Go(func() {
			if err := a.daprSrv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				a.log.Warn("dapr listener shutdown", "err", err)
			}
		})
	}
	if a.runner != nil {
		wg.Go(a.runner.Stop)
	}
	if a.pool != nil {
		wg.Go(a.pool.Stop)
	}
	wg.Wait()
	if a.debug != nil {
		a.debug.Close()
	}
	if a.unsubscribe != nil {
		a.unsubscribe()
	}
	a.relay.Stop()
	if a.hooks != nil {
		a.hooks.Stop()
	}
	if a.feed != nil {
		a.feed.Stop()
	}
	if a.keys != nil {
		a.keys.Stop()
	}
	a.cancelRun()
	a.close()
	a.log.Info("stopped")
}

// unreadyWhileDraining answers GET /readyz with 503 once Stop has begun,
// and passes everything else (and readyz before) to next.
func (a *App) unreadyWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.draining.Load() && r.Method == http.MethodGet && r.URL.Path == "/readyz" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "draining: shutting down\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// close releases what New opened.
func (a *App) close() {
	if a.ln != nil {
		a.ln.Close()
	}
	if a.daprLn != nil {
		a.daprLn.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
}

// authenticator is the API's Authenticator for cfg.Auth, nil in the none
// mode, with its OIDC verifier in the oidc mode; it keeps the API keys'
// verifier, which Start and Stop run.
func (a *App) authenticator(ctx context.Context) (*auth.Authenticator, *auth.OIDC, error) {
	cfg := a.cfg
	if cfg.Auth == string(auth.ModeNone) {
		return nil, nil, nil
	}
	a.keys = auth.NewKeys(a.store, auth.KeysConfig{Logger: a.log})
	ac := auth.Config{
		Mode: auth.Mode(cfg.Auth), GatewaySecret: cfg.GatewaySecret,
		GatewaySecretHeader: cfg.GatewaySecretHeader, TenantHeader: cfg.TenantHeader,
		UserHeader: cfg.UserHeader, RolesHeader: cfg.RolesHeader,
		PlatformAdminRole: cfg.PlatformAdminRole, Keys: a.keys,
	}
	if ac.Mode == auth.ModeOIDC {
		o, err := auth.NewOIDC(ctx, auth.OIDCConfig{
			Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience,
			TenantClaim: cfg.OIDCTenantClaim, SubjectClaim: cfg.OIDCSubjectClaim,
			RolesClaim: cfg.OIDCRolesClaim, TaskTypesClaim: cfg.OIDCTaskTypesClaim,
			PlatformAdminRole: cfg.PlatformAdminRole, HTTPClient: cfg.OIDCHTTPClient,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("oidc issuer %s: %w", cfg.OIDCIssuer, err)
		}
		ac.OIDC = o
	}
	authn, err := auth.NewAuthenticator(ac)
	return authn, ac.OIDC, err
}

// consoleOIDC is the console's log-in with the issuer verifier trusts,
// nil without a console client (or outside the oidc mode).
func (a *App) consoleOIDC(verifier *auth.OIDC) (*console.OIDC, error) {
	cfg := a.cfg
	if verifier == nil || cfg.OIDCConsoleClientID == "" {
		return nil, nil
	}
	ends := verifier.Endpoints()
	if ends.Authorization == "" || ends.Token == "" {
		return nil, fmt.Errorf("oidc-console-client-id: issuer %s advertises no authorization_endpoint or token_endpoint, which the console's log-in needs", cfg.OIDCIssuer)
	}
	return &console.OIDC{
		Issuer: verifier.Issuer(), ClientID: cfg.OIDCConsoleClientID, ClientSecret: cfg.OIDCConsoleClientSecret,
		AuthURL: ends.Authorization, TokenURL: ends.Token, Scopes: consoleScopes(cfg.OIDCConsoleScopes),
		Verifier: verifier, HTTPClient: cfg.OIDCHTTPClient,
	}, nil
}

// consoleScopes reads a space or comma list of scopes; openid is always
// among them, as the log-in checks an ID token.
func consoleScopes(s string) []string {
	scopes := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
	if !slices.Contains(scopes, "openid") {
		scopes = append([]string{"openid"}, scopes...)
	}
	return scopes
}
