package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk"
	"github.com/commonops/commonops/bus"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/httpapi"
	"github.com/commonops/commonops/maintenance"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/outbox"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
	"github.com/commonops/commonops/store/sqlite"
	"github.com/commonops/commonops/worker"
)

// workerTopics are the events the built-in worker reacts to.
var workerTopics = []string{commonops.TopicCreated, commonops.TopicRetried, commonops.TopicCancelled}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openStore opens PostgreSQL for a postgres:// URL and the embedded SQLite
// file otherwise; both apply their migrations.
func openStore(ctx context.Context, cfg *config, reg prometheus.Registerer) (store.Store, string, error) {
	u := cfg.DatabaseURL
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		s, err := postgres.Open(ctx, postgres.Config{URL: u, MaxConns: int32(cfg.DBMaxConns), DeletePublished: cfg.KeepOutbox == 0, Registerer: reg})
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL: %w", err)
		}
		return s, "postgres", nil
	}
	path := strings.TrimPrefix(u, "sqlite:")
	if path == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, "", fmt.Errorf("create data directory: %w", err)
		}
		path = filepath.Join(cfg.DataDir, "commonops.db")
	}
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path, DeletePublished: cfg.KeepOutbox == 0})
	if err != nil {
		return nil, "", fmt.Errorf("open SQLite %s: %w", path, err)
	}
	return s, "sqlite " + path, nil
}

func migrate(ctx context.Context, cfg *config, stdout io.Writer) error {
	s, name, err := openStore(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "migrations applied on %s\n", name)
	return nil
}

// serve runs the roles of cfg until ctx ends, then shuts down gracefully.
// The start-up log line carries the bound address (tests listen on port 0
// and read it there).
func serve(ctx context.Context, cfg *config, stdout io.Writer) error {
	log := newLogger(cfg, stdout)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	}

	st, storeName, err := openStore(ctx, cfg, reg)
	if err != nil {
		return err
	}
	defer st.Close()

	svc := &operations.Service{
		Store:     st,
		Limits:    commonops.Limits{MaxParamsBytes: cfg.MaxParamsBytes, MaxFileSize: cfg.MaxFileSize},
		Lease:     cfg.Lease,
		URLExpiry: cfg.URLExpiry,
	}

	objects, files, err := openObjects(ctx, cfg, publicURL, svc, log)
	if err != nil {
		return err
	}
	svc.Objects = objects

	// Pub/sub: the outbox relay publishes committed events to the embedded
	// bus or to the Dapr sidecar.
	publisher, pubsubCheck, embedded := openPubSub(cfg)
	relay := outbox.NewRelay(st, publisher, outbox.Config{Logger: log, Registerer: reg})

	var pool *worker.Pool
	var daprHandler http.Handler
	if cfg.hasRole("worker") {
		if pool, err = newPool(cfg, svc, st, log, reg); err != nil {
			return err
		}
		if embedded != nil {
			unsubscribe := embedded.Subscribe(workerTopics, func(ctx context.Context, m bus.Message) error {
				return pool.HandleEvent(commonops.WithTraceParent(ctx, m.TraceParent), m.Topic, m.Task)
			})
			defer unsubscribe()
		} else {
			daprHandler = dapr.NewSubscriber(dapr.SubscriberConfig{
				PubSubName: cfg.DaprPubSub, Handle: pool.HandleEvent, Logger: log, Registerer: reg,
				AppToken: cfg.DaprAppToken,
			})
		}
	}

	var runner *maintenance.Runner
	if cfg.hasRole("maintenance") {
		runner = maintenance.New(maintenance.Config{
			Service:             svc,
			UploadSweepInterval: cfg.UploadSweep, UnclaimedTimeout: cfg.UnclaimedAfter,
			RetentionCompleted: cfg.KeepCompleted, RetentionFailed: cfg.KeepFailed, RetentionCancelled: cfg.KeepCancelled,
			OutboxRetention: cfg.KeepOutbox, Logger: log, Registerer: reg,
		})
	}

	checks := map[string]func(context.Context) error{
		"database": st.Ping,
		"storage":  svc.Objects.Check,
		"pubsub":   pubsubCheck,
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	streamsDone := make(chan struct{})
	var handler http.Handler
	if cfg.hasRole("api") {
		handler = httpapi.NewServer(httpapi.Config{
			Service: svc, Checks: checks, Files: files, Dapr: daprHandler, Metrics: metrics,
			Logger: log, MaxBodyBytes: cfg.MaxBodyBytes, Registerer: reg, StreamsDone: streamsDone,
		})
	} else {
		handler = internalMux(checks, files, daprHandler, metrics)
	}

	// Start the background roles, then serve.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	relay.Start(runCtx)
	if pool != nil {
		pool.Start(runCtx)
	}
	if runner != nil {
		runner.Start(runCtx)
	}
	if cfg.DebugAddr != "" {
		debug := &http.Server{Addr: cfg.DebugAddr, Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := debug.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("debug server", "err", err)
			}
		}()
		defer debug.Close()
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	srv.RegisterOnShutdown(func() { close(streamsDone) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("commonops started", "addr", ln.Addr().String(), "roles", cfg.Roles, "store", storeName,
		"storage", cfg.Storage, "pubsub", cfg.PubSub, "publicUrl", publicURL, "version", version)

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	// Graceful shutdown: stop accepting and finish in-flight requests, let
	// running tasks finish (or hand them back), drain the outbox, close the
	// store (deferred).
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	if runner != nil {
		runner.Stop()
	}
	if pool != nil {
		pool.Stop()
	}
	relay.Stop()
	cancelRun()
	log.Info("stopped")
	return nil
}

// openObjects opens the configured object store. The local store is also
// served by commonops (the returned handler) and confirms uploads itself.
func openObjects(ctx context.Context, cfg *config, publicURL string, svc *operations.Service, log *slog.Logger) (objectstore.Store, http.Handler, error) {
	if cfg.Storage == "s3" {
		s3, err := objectstore.NewS3(ctx, objectstore.S3Config{
			Endpoint: cfg.S3Endpoint, PublicEndpoint: cfg.S3PublicURL, UseSSL: cfg.S3UseSSL, Region: cfg.S3Region,
			Bucket: cfg.S3Bucket, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
			PathStyle: cfg.S3PathStyle, CreateBucket: cfg.S3CreateBucket,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("S3 object store: %w", err)
		}
		return s3, nil, nil
	}
	local, err := objectstore.NewLocal(objectstore.LocalConfig{
		Dir:     filepath.Join(cfg.DataDir, "files"),
		BaseURL: publicURL,
		MaxSize: cfg.MaxFileSize,
		OnUpload: func(ctx context.Context, key string, size int64) {
			id, ok := objectstore.InputTaskID(key)
			if !ok {
				return
			}
			if err := svc.UploadReceived(ctx, id, size); err != nil && commonops.ErrorCode(err) != commonops.ECONFLICT {
				log.Warn("confirm upload", "task", id, "err", err)
			}
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("local object store: %w", err)
	}
	return local, local.Handler(), nil
}

// openPubSub returns the publisher the outbox relay feeds, the pub/sub
// health check, and the embedded bus when that is the publisher.
func openPubSub(cfg *config) (outbox.Publisher, func(context.Context) error, *bus.Bus) {
	if cfg.PubSub == "dapr" {
		p := dapr.NewPublisher(dapr.PublisherConfig{BaseURL: cfg.DaprURL, PubSubName: cfg.DaprPubSub})
		return p, p.Check, nil
	}
	b := bus.New()
	return b, func(context.Context) error { return nil }, b
}

// newPool builds the built-in worker with every processor: the configured
// import and export entities, the built-in task export, and noop.
func newPool(cfg *config, svc *operations.Service, st store.Store, log *slog.Logger, reg prometheus.Registerer) (*worker.Pool, error) {
	registry := worker.NewRegistry()
	entities := &bulk.Config{}
	if cfg.EntityConfig != "" {
		var err error
		if entities, err = bulk.LoadConfig(cfg.EntityConfig); err != nil {
			return nil, fmt.Errorf("entity config: %w", err)
		}
	}
	if err := bulk.Register(registry, entities, st); err != nil {
		return nil, fmt.Errorf("register processors: %w", err)
	}
	// noop completes at once: a canary for checking the whole pipeline
	// (create, event, claim, complete) and the unit of the benchmarks.
	registry.Register("noop", "*", worker.ProcessorFunc(func(context.Context, worker.Job) error { return nil }))
	typeCaps, _ := cfg.typeConcurrency() // validated with the config
	return worker.NewPool(worker.Config{
		Service: svc, Objects: svc.Objects, Registry: registry,
		Concurrency: cfg.Concurrency, TypeConcurrency: typeCaps, PollInterval: cfg.PollInterval,
		Logger: log, Registerer: reg,
	}), nil
}

// pprofMux serves the runtime profiles, on their own listener so they are
// never exposed with the API.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// internalMux serves what a process without the api role still needs:
// liveness, readiness, metrics, the local file routes and Dapr's
// subscription endpoints.
func internalMux(checks map[string]func(context.Context) error, files, daprHandler, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := checks["database"](ctx); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.Handle("GET /metrics", metrics)
	if files != nil {
		mux.Handle("/files/", files)
	}
	if daprHandler != nil {
		mux.Handle("/dapr/", daprHandler)
	}
	return mux
}
