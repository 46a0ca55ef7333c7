package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/worker"
)

// config is every setting of commonops serve. Each has a flag and a
// COMMONOPS_* environment variable (the flag wins); settings lists them with
// their defaults, and `commonops config` prints that list as the README's
// table, so the two cannot drift.
type config struct {
	Addr            string
	Roles           string
	DatabaseURL     string
	DataDir         string
	DBMaxConns      int
	PublicURL       string
	Storage         string
	S3Endpoint      string
	S3PublicURL     string
	S3Region        string
	S3Bucket        string
	S3AccessKey     string
	S3SecretKey     string
	S3UseSSL        bool
	S3PathStyle     bool
	S3CreateBucket  bool
	URLExpiry       time.Duration
	MaxFileSize     int64
	MaxParamsBytes  int
	MaxBodyBytes    int64
	PubSub          string
	DaprURL         string
	DaprPubSub      string
	DaprAppToken    string
	Lease           time.Duration
	Concurrency     int
	TypeConcurrency string
	PollInterval    time.Duration
	UploadSweep     time.Duration
	UnclaimedAfter  time.Duration
	KeepCompleted   time.Duration
	KeepFailed      time.Duration
	KeepCancelled   time.Duration
	KeepOutbox      time.Duration
	EntityConfig    string
	LogLevel        string
	ShutdownTimeout time.Duration
	DebugAddr       string
}

type setting struct {
	flag, env, def, usage string
	bind                  func(fs *flag.FlagSet, name, value, usage string)
}

func str(p *string) func(*flag.FlagSet, string, string, string) {
	return func(fs *flag.FlagSet, name, value, usage string) { fs.StringVar(p, name, value, usage) }
}

func boolean(p *bool) func(*flag.FlagSet, string, string, string) {
	return func(fs *flag.FlagSet, name, value, usage string) {
		v, _ := strconv.ParseBool(value)
		fs.BoolVar(p, name, v, usage)
	}
}

func duration(p *time.Duration) func(*flag.FlagSet, string, string, string) {
	return func(fs *flag.FlagSet, name, value, usage string) {
		fs.Func(name, usage, func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				return fmt.Errorf("want a duration such as 30s or 15m, got %q", s)
			}
			*p = d
			return nil
		})
		_ = fs.Set(name, value)
	}
}

func integer[T int | int64](p *T) func(*flag.FlagSet, string, string, string) {
	return func(fs *flag.FlagSet, name, value, usage string) {
		fs.Func(name, usage, func(s string) error {
			n, err := parseSize(s)
			if err != nil {
				return err
			}
			*p = T(n)
			return nil
		})
		_ = fs.Set(name, value)
	}
}

// parseSize reads a non-negative integer with an optional KiB/MiB/GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a non-negative number (optionally with KiB, MiB or GiB), got %q", s)
	}
	return n * mult, nil
}

func (c *config) settings() []setting {
	return []setting{
		{"addr", "COMMONOPS_ADDR", ":8080", "listen address of the HTTP server", str(&c.Addr)},
		{"roles", "COMMONOPS_ROLES", "api,worker,maintenance", "roles this process runs (comma list of api, worker, maintenance)", str(&c.Roles)},
		{"database-url", "COMMONOPS_DATABASE_URL", "", "postgres://... for PostgreSQL; empty for the embedded SQLite file DATA_DIR/commonops.db", str(&c.DatabaseURL)},
		{"db-max-conns", "COMMONOPS_DB_MAX_CONNS", "32", "PostgreSQL connection pool size of this process (mind max_connections across replicas)", integer(&c.DBMaxConns)},
		{"data-dir", "COMMONOPS_DATA_DIR", "./data", "directory of the embedded SQLite database and local files", str(&c.DataDir)},
		{"public-url", "COMMONOPS_PUBLIC_URL", "", "base URL clients reach this service at, for local-store file URLs; empty: http://localhost:PORT", str(&c.PublicURL)},
		{"storage", "COMMONOPS_STORAGE", "local", "object storage: local (files under DATA_DIR/files, served by commonops) or s3", str(&c.Storage)},
		{"s3-endpoint", "COMMONOPS_S3_ENDPOINT", "", "S3 endpoint host:port the service uses", str(&c.S3Endpoint)},
		{"s3-public-endpoint", "COMMONOPS_S3_PUBLIC_ENDPOINT", "", "S3 host:port put in URLs handed to clients; empty: the endpoint", str(&c.S3PublicURL)},
		{"s3-region", "COMMONOPS_S3_REGION", "us-east-1", "S3 region", str(&c.S3Region)},
		{"s3-bucket", "COMMONOPS_S3_BUCKET", "commonops", "S3 bucket", str(&c.S3Bucket)},
		{"s3-access-key", "COMMONOPS_S3_ACCESS_KEY", "", "S3 access key", str(&c.S3AccessKey)},
		{"s3-secret-key", "COMMONOPS_S3_SECRET_KEY", "", "S3 secret key", str(&c.S3SecretKey)},
		{"s3-use-ssl", "COMMONOPS_S3_USE_SSL", "false", "use https to reach S3", boolean(&c.S3UseSSL)},
		{"s3-path-style", "COMMONOPS_S3_PATH_STYLE", "true", "path-style bucket addressing (MinIO, versitygw)", boolean(&c.S3PathStyle)},
		{"s3-create-bucket", "COMMONOPS_S3_CREATE_BUCKET", "false", "create the bucket at start if missing", boolean(&c.S3CreateBucket)},
		{"url-expiry", "COMMONOPS_URL_EXPIRY", "15m", "lifetime of upload and download URLs (at most 168h)", duration(&c.URLExpiry)},
		{"max-file-size", "COMMONOPS_MAX_FILE_SIZE", "5GiB", "largest input file accepted", integer(&c.MaxFileSize)},
		{"max-params-bytes", "COMMONOPS_MAX_PARAMS_BYTES", "64KiB", "largest params object accepted", integer(&c.MaxParamsBytes)},
		{"max-body-bytes", "COMMONOPS_MAX_BODY_BYTES", "1MiB", "largest request body accepted", integer(&c.MaxBodyBytes)},
		{"pubsub", "COMMONOPS_PUBSUB", "embedded", "pub/sub: embedded (in-process bus) or dapr (a Dapr sidecar)", str(&c.PubSub)},
		{"dapr-url", "COMMONOPS_DAPR_URL", "", "Dapr sidecar HTTP URL; empty: http://127.0.0.1:$DAPR_HTTP_PORT (3500)", str(&c.DaprURL)},
		{"dapr-pubsub", "COMMONOPS_DAPR_PUBSUB", "pubsub", "name of the Dapr pub/sub component", str(&c.DaprPubSub)},
		{"lease", "COMMONOPS_LEASE", "30s", "lease a worker holds a task for between heartbeats", duration(&c.Lease)},
		{"worker-concurrency", "COMMONOPS_WORKER_CONCURRENCY", strconv.Itoa(worker.ConcurrencyDefault), "tasks the built-in worker runs at once (most wait on I/O; cap heavy types with worker-type-concurrency)", integer(&c.Concurrency)},
		{"worker-type-concurrency", "COMMONOPS_WORKER_TYPE_CONCURRENCY", "", "per-taskType caps within worker-concurrency, e.g. import=2,export=4; empty: none", str(&c.TypeConcurrency)},
		{"poll-interval", "COMMONOPS_POLL_INTERVAL", "2s", "fallback poller interval: finds runnable tasks no event started", duration(&c.PollInterval)},
		{"upload-sweep-interval", "COMMONOPS_UPLOAD_SWEEP_INTERVAL", "2s", "how often maintenance looks for uploads nobody confirmed", duration(&c.UploadSweep)},
		{"unclaimed-timeout", "COMMONOPS_UNCLAIMED_TIMEOUT", "10m", "fail a pending task no worker claimed within this time", duration(&c.UnclaimedAfter)},
		{"retention-completed", "COMMONOPS_RETENTION_COMPLETED", "720h", "delete completed tasks (with files) after this age", duration(&c.KeepCompleted)},
		{"retention-failed", "COMMONOPS_RETENTION_FAILED", "2160h", "delete failed tasks after this age", duration(&c.KeepFailed)},
		{"retention-cancelled", "COMMONOPS_RETENTION_CANCELLED", "720h", "delete cancelled tasks after this age", duration(&c.KeepCancelled)},
		{"outbox-retention", "COMMONOPS_OUTBOX_RETENTION", "0s", "keep published outbox rows this long; 0 deletes them as they are published (each task's history stays in its events)", duration(&c.KeepOutbox)},
		{"config", "COMMONOPS_CONFIG", "", "YAML file of entities for the built-in import and export processors", str(&c.EntityConfig)},
		{"log-level", "COMMONOPS_LOG_LEVEL", "info", "debug, info, warn or error", str(&c.LogLevel)},
		{"shutdown-timeout", "COMMONOPS_SHUTDOWN_TIMEOUT", "30s", "how long SIGTERM waits for requests and running tasks", duration(&c.ShutdownTimeout)},
		{"debug-addr", "COMMONOPS_DEBUG_ADDR", "", "listen address of a separate pprof server (/debug/pprof/); empty: off", str(&c.DebugAddr)},
	}
}

// parseConfig reads args (after the subcommand) over the environment.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range c.settings() {
		value := s.def
		if v := getenv(s.env); v != "" {
			value = v
		}
		s.bind(fs, s.flag, value, s.usage+" ($"+s.env+")")
		if value != s.def {
			// The environment value must parse too; Set reports it.
			if err := fs.Set(s.flag, value); err != nil {
				return nil, fmt.Errorf("$%s: %w", s.env, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.DaprURL == "" {
		c.DaprURL = dapr.DefaultBaseURL(getenv)
	}
	// Dapr's own convention: the sidecar run with APP_API_TOKEN sends it on
	// every delivery, and the app refuses deliveries without it.
	c.DaprAppToken = getenv("APP_API_TOKEN")
	return c, c.validate()
}

func (c *config) validate() error {
	for _, r := range strings.Split(c.Roles, ",") {
		switch strings.TrimSpace(r) {
		case "api", "worker", "maintenance":
		default:
			return fmt.Errorf("roles: unknown role %q (want api, worker, maintenance)", r)
		}
	}
	switch c.Storage {
	case "local":
	case "s3":
		if c.S3Endpoint == "" || c.S3Bucket == "" {
			return fmt.Errorf("storage s3 needs COMMONOPS_S3_ENDPOINT and COMMONOPS_S3_BUCKET")
		}
	default:
		return fmt.Errorf("storage: want local or s3, got %q", c.Storage)
	}
	if c.PubSub != "embedded" && c.PubSub != "dapr" {
		return fmt.Errorf("pubsub: want embedded or dapr, got %q", c.PubSub)
	}
	if c.URLExpiry <= 0 || c.URLExpiry > 7*24*time.Hour {
		return fmt.Errorf("url-expiry: want between 1s and 168h, got %s", c.URLExpiry)
	}
	if c.Lease < time.Second {
		return fmt.Errorf("lease: want at least 1s, got %s", c.Lease)
	}
	if _, err := c.typeConcurrency(); err != nil {
		return err
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("worker-concurrency: want at least 1, got %d", c.Concurrency)
	}
	return nil
}

// typeConcurrency parses TypeConcurrency ("import=2,export=4").
func (c *config) typeConcurrency() (map[string]int, error) {
	caps := map[string]int{}
	for _, part := range strings.Split(c.TypeConcurrency, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(value)
		if !ok || name == "" || err != nil || n < 1 {
			return nil, fmt.Errorf("worker-type-concurrency: want taskType=N pairs such as import=2,export=4, got %q", part)
		}
		caps[name] = n
	}
	return caps, nil
}

func (c *config) hasRole(role string) bool {
	for _, r := range strings.Split(c.Roles, ",") {
		if strings.TrimSpace(r) == role {
			return true
		}
	}
	return false
}

// printTable writes the settings as a Markdown table (the README's).
func printTable(w io.Writer) {
	fmt.Fprintln(w, "| flag | environment | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, s := range (&config{}).settings() {
		def := s.def
		if def == "" {
			def = "—"
		}
		fmt.Fprintf(w, "| `--%s` | `%s` | `%s` | %s |\n", s.flag, s.env, def, s.usage)
	}
}
