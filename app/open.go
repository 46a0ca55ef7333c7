package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/store/postgres"
	"github.com/commonops/commonops/store/sqlite"
	"github.com/commonops/commonops/worker"
)

// storePostgres is OpenStore's name for PostgreSQL, the one store several
// processes share.
const storePostgres = "postgres"

// OpenStore opens PostgreSQL for a postgres:// URL and SQLite otherwise
// (cfg.DatabaseURL "sqlite:PATH", or DataDir/commonops.db), applying the
// migrations, and returns it with a name for logs. reg may be nil.
//
// With the embedded bus the store writes outbox rows for
// commonops.WorkerTopics only: the bus reaches this process alone, where
// only the worker subscribes, so a completed, failed or progress message
// would be written, relayed and deleted for no one (one insert, one delete
// and a relay read of every finished task). Their events stay in
// task_events and their webhook deliveries are written as before. The
// rows it writes carry the task's header, not the whole task: the worker
// takes an event only as a hint of which task to claim, and reads the
// rest from the store.
func OpenStore(ctx context.Context, cfg Config, reg prometheus.Registerer) (store.Store, string, error) {
	cfg = cfg.withDefaults()
	deletePublished := cfg.OutboxRetention == 0
	topics, err := cfg.busTopics()
	if err != nil {
		return nil, "", fmt.Errorf("dapr-topics: %w", err)
	}
	embedded := cfg.PubSub == PubSubEmbedded
	u := cfg.DatabaseURL
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		s, err := postgres.Open(ctx, postgres.Config{URL: u, MaxConns: int32(cfg.DBMaxConns), WarmConns: int32(cfg.DBWarmConns), DeletePublished: deletePublished, Topics: topics, HeaderPayload: embedded, ReadTimeout: cfg.ReadTimeout, Registerer: reg})
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL: %w", err)
		}
		return s, storePostgres, nil
	}
	path := strings.TrimPrefix(u, "sqlite:")
	if path == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, "", fmt.Errorf("create data directory: %w", err)
		}
		path = filepath.Join(cfg.DataDir, "commonops.db")
	}
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path, DeletePublished: deletePublished, Topics: topics, HeaderPayload: embedded, ReadTimeout: cfg.ReadTimeout})
	if err != nil {
		return nil, "", fmt.Errorf("open SQLite %s: %w", path, err)
	}
	return s, "sqlite " + path, nil
}

// openObjects opens the configured object store. The local store is also
// served by commonops (the returned handler), confirms uploads itself and
// takes a PUT only while the service says its upload is open. On S3 only a
// process that serves the console (the api role) writes the bucket's CORS
// rule, so workers need no rights to the bucket's configuration.
func openObjects(ctx context.Context, cfg Config, publicURL string, svc *operations.Service) (objectstore.Store, http.Handler, error) {
	if cfg.Storage == StorageS3 {
		var origins []string
		if roles, _ := parseRoles(cfg.Roles); roles[RoleAPI] {
			origins, _ = objectstore.ParseOrigins(cfg.S3CORSOrigins) // checked by Validate
		}
		s3, err := objectstore.NewS3(ctx, objectstore.S3Config{
			Endpoint: cfg.S3Endpoint, PublicEndpoint: cfg.S3PublicEndpoint, UseSSL: cfg.S3UseSSL, Region: cfg.S3Region,
			Bucket: cfg.S3Bucket, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
			PathStyle: cfg.S3PathStyle, CreateBucket: cfg.S3CreateBucket, CORSOrigins: origins,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("S3 object store: %w", err)
		}
		return s3, nil, nil
	}
	log := cfg.Logger
	local, err := objectstore.NewLocal(objectstore.LocalConfig{
		Dir:      filepath.Join(cfg.DataDir, "files"),
		BaseURL:  publicURL,
		MaxSize:  cfg.MaxFileSize,
		Logger:   log,
		AllowPut: svc.AllowPut,

		MaxConcurrentUploads: cfg.MaxConcurrentUploads,
		MinTransferRate:      cfg.MinTransferRate,
		TransferGrace:        cfg.TransferGrace,
		OnUpload: func(ctx context.Context, info objectstore.Info) {
			id, ok := objectstore.InputTaskID(info.Key)
			if !ok {
				return
			}
			if err := svc.UploadReceived(ctx, id, info); err != nil && commonops.ErrorCode(err) != commonops.ECONFLICT {
				log.Warn("confirm upload", "task", id, "err", err)
			}
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("local object store: %w", err)
	}
	return local, local.Handler(), nil
}

// loadEntities reads the entity configuration, cfg.ConfigFile; without
// one it is empty (only the built-in task export).
func loadEntities(cfg Config) (*bulk.Config, error) {
	if cfg.ConfigFile == "" {
		return &bulk.Config{}, nil
	}
	entities, err := bulk.LoadConfig(cfg.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("entity config: %w", err)
	}
	return entities, nil
}

// registerBulk registers the import and export processors of entities and
// the built-in task-history export.
func registerBulk(r *worker.Registry, entities *bulk.Config, svc *operations.Service) error {
	if err := bulk.Register(r, entities, svc); err != nil {
		return fmt.Errorf("register processors: %w", err)
	}
	return nil
}

// bulkValidators are the create checks of the built-in import and export
// for entities, except for an entity none of them configures that a
// processor registered on this worker (App.Register) runs: its processor
// owns its params.
func bulkValidators(entities *bulk.Config, r *worker.Registry) map[string]operations.CreateCheck {
	checks := bulk.Validators(entities)
	for taskType, check := range checks {
		checks[taskType] = func(in commonops.CreateInput) []commonops.FieldError {
			if _, configured := entities.Entities[in.EntityType]; !configured && in.EntityType != bulk.TaskEntity {
				if _, ok := r.Lookup(taskType, in.EntityType); ok {
					return nil
				}
			}
			return check(in)
		}
	}
	return checks
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
// liveness, readiness, metrics and the local file routes.
func internalMux(database func(context.Context) error, files, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := database(ctx); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.Handle("GET /metrics", metrics)
	if files != nil {
		mux.Handle("/files/", files)
	}
	return mux
}
