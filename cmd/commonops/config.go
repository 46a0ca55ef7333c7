package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/httpapi"
	"github.com/commonops/commonops/maintenance"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
	"github.com/commonops/commonops/webhook"
	"github.com/commonops/commonops/worker"
)

// options is every setting of commonops serve: the app's Config and the
// log level. Each setting has a flag and a COMMONOPS_* environment variable
// (the flag wins); settings lists them with their defaults, taken from the
// constants of the package that owns each, and `commonops config` prints
// them with the values in force.
type options struct {
	app.Config
	LogLevel string
}

// setting is one flag: its name, environment variable, default and usage,
// and the field it sets.
type setting struct {
	flag, env, def, usage string
	secret                bool
	value                 flag.Value
}

func (o *options) settings() []setting {
	c := &o.Config
	return []setting{
		{flag: "addr", env: "COMMONOPS_ADDR", def: app.AddrDefault, usage: "listen address of the HTTP server", value: str(&c.Addr)},
		{flag: "max-connections", env: "COMMONOPS_MAX_CONNECTIONS", def: strconv.Itoa(app.MaxConnectionsDefault), usage: "open HTTP connections this process accepts; more wait in the listen backlog", value: number(&c.MaxConnections)},
		{flag: "idle-timeout", env: "COMMONOPS_IDLE_TIMEOUT", def: fmtDuration(app.IdleTimeoutDefault), usage: "close keep-alive connections idle this long", value: duration(&c.IdleTimeout)},
		{flag: "roles", env: "COMMONOPS_ROLES", def: app.RolesDefault, usage: "roles this process runs (comma list of api, worker, maintenance)", value: str(&c.Roles)},
		{flag: "database-url", env: "COMMONOPS_DATABASE_URL", usage: "postgres://... for PostgreSQL; empty for the embedded SQLite file DATA_DIR/commonops.db", secret: true, value: str(&c.DatabaseURL)},
		{flag: "db-max-conns", env: "COMMONOPS_DB_MAX_CONNS", def: strconv.Itoa(app.DBMaxConnsDefault), usage: "PostgreSQL connection pool size of this process (mind max_connections across replicas)", value: number(&c.DBMaxConns)},
		{flag: "db-warm-conns", env: "COMMONOPS_DB_WARM_CONNS", def: strconv.Itoa(app.DBMaxConnsDefault), usage: "PostgreSQL connections opened and warmed at start, and kept open (at most db-max-conns): the first requests do not wait for PostgreSQL to load its catalog into each new connection; 0: open on demand", value: number(&c.DBWarmConns)},
		{flag: "read-timeout", env: "COMMONOPS_READ_TIMEOUT", def: fmtDuration(store.ReadTimeoutDefault), usage: "bound of each read the API serves (get, list, logs, events); longer answers 503", value: duration(&c.ReadTimeout)},
		{flag: "data-dir", env: "COMMONOPS_DATA_DIR", def: app.DataDirDefault, usage: "directory of the embedded SQLite database and local files", value: str(&c.DataDir)},
		{flag: "public-url", env: "COMMONOPS_PUBLIC_URL", usage: "base URL clients reach this service at, for local-store file URLs and the console's OIDC redirect URI (https makes its cookies Secure); empty: http://localhost:PORT", value: str(&c.PublicURL)},
		{flag: "storage", env: "COMMONOPS_STORAGE", def: app.StorageLocal, usage: "object storage: local (files under DATA_DIR/files, served by commonops) or s3", value: str(&c.Storage)},
		{flag: "s3-endpoint", env: "COMMONOPS_S3_ENDPOINT", usage: "S3 endpoint host:port the service uses", value: str(&c.S3Endpoint)},
		{flag: "s3-public-endpoint", env: "COMMONOPS_S3_PUBLIC_ENDPOINT", usage: "S3 host:port put in URLs handed to clients; empty: the endpoint", value: str(&c.S3PublicEndpoint)},
		{flag: "s3-region", env: "COMMONOPS_S3_REGION", def: objectstore.RegionDefault, usage: "S3 region", value: str(&c.S3Region)},
		{flag: "s3-bucket", env: "COMMONOPS_S3_BUCKET", def: "commonops", usage: "S3 bucket", value: str(&c.S3Bucket)},
		{flag: "s3-access-key", env: "COMMONOPS_S3_ACCESS_KEY", usage: "S3 access key", value: str(&c.S3AccessKey)},
		{flag: "s3-secret-key", env: "COMMONOPS_S3_SECRET_KEY", usage: "S3 secret key", secret: true, value: str(&c.S3SecretKey)},
		{flag: "s3-use-ssl", env: "COMMONOPS_S3_USE_SSL", def: "false", usage: "use https to reach S3", value: boolean(&c.S3UseSSL)},
		{flag: "s3-path-style", env: "COMMONOPS_S3_PATH_STYLE", def: "true", usage: "path-style bucket addressing (MinIO, versitygw); false picks it from the endpoint", value: boolean(&c.S3PathStyle)},
		{flag: "s3-create-bucket", env: "COMMONOPS_S3_CREATE_BUCKET", def: "false", usage: "create the bucket at start if missing", value: boolean(&c.S3CreateBucket)},
		{flag: "s3-cors-origins", env: "COMMONOPS_S3_CORS_ORIGINS", usage: "origins the console is opened at (scheme://host[:port], comma list), whose browsers upload to the bucket: at start an api process writes the bucket's CORS rule for them, keeping other rules; empty: the bucket's CORS is left alone", value: str(&c.S3CORSOrigins)},
		{flag: "url-expiry", env: "COMMONOPS_URL_EXPIRY", def: fmtDuration(objectstore.URLExpiryDefault), usage: "lifetime of upload and download URLs (at most " + fmtDuration(objectstore.URLExpiryMax) + ")", value: duration(&c.URLExpiry)},
		{flag: "max-file-size", env: "COMMONOPS_MAX_FILE_SIZE", def: fmtSize(commonops.MaxFileSizeDefault), usage: "largest input file accepted", value: size(&c.MaxFileSize)},
		{flag: "max-concurrent-uploads", env: "COMMONOPS_MAX_CONCURRENT_UPLOADS", def: strconv.Itoa(objectstore.MaxConcurrentUploadsDefault), usage: "uploads the local store takes at once; one more is answered 503", value: number(&c.MaxConcurrentUploads)},
		{flag: "min-transfer-rate", env: "COMMONOPS_MIN_TRANSFER_RATE", def: fmtSize(objectstore.MinTransferRateDefault), usage: "bytes a second a local-store upload or download must keep up (after transfer-grace); slower is cut", value: size(&c.MinTransferRate)},
		{flag: "transfer-grace", env: "COMMONOPS_TRANSFER_GRACE", def: fmtDuration(objectstore.TransferGraceDefault), usage: "how far a local-store transfer may fall behind min-transfer-rate", value: duration(&c.TransferGrace)},
		{flag: "max-streams", env: "COMMONOPS_MAX_STREAMS", def: strconv.Itoa(httpapi.MaxStreamsDefault), usage: "open event streams this process serves; one more is answered 429", value: number(&c.MaxStreams)},
		{flag: "max-tenant-streams", env: "COMMONOPS_MAX_TENANT_STREAMS", def: strconv.Itoa(httpapi.MaxTenantStreamsDefault), usage: "open event streams of one tenant; one more is answered 429", value: number(&c.MaxTenantStreams)},
		{flag: "max-params-bytes", env: "COMMONOPS_MAX_PARAMS_BYTES", def: fmtSize(commonops.MaxParamsBytesDefault), usage: "largest params object accepted", value: size(&c.MaxParamsBytes)},
		{flag: "max-body-bytes", env: "COMMONOPS_MAX_BODY_BYTES", def: fmtSize(httpapi.MaxBodyBytesDefault), usage: "largest request body accepted", value: size(&c.MaxBodyBytes)},
		{flag: "quota-creates-per-minute", env: "COMMONOPS_QUOTA_CREATES_PER_MINUTE", def: strconv.Itoa(operations.QuotaCreatesPerMinuteDefault), usage: "tasks one tenant may create in any minute, across replicas; one more is answered 429; 0: no quota", value: quota(&c.QuotaCreatesPerMinute)},
		{flag: "quota-concurrent-heavy", env: "COMMONOPS_QUOTA_CONCURRENT_HEAVY", def: strconv.Itoa(operations.QuotaConcurrentHeavyDefault), usage: "unfinished (scheduled, pending, processing) tasks of the heavy types one tenant may have; creating one more is answered 429; 0: no quota", value: quota(&c.QuotaConcurrentHeavy)},
		{flag: "quota-heavy-types", env: "COMMONOPS_QUOTA_HEAVY_TYPES", def: operations.QuotaHeavyTypesDefault, usage: "task types quota-concurrent-heavy counts (comma list)", value: str(&c.QuotaHeavyTypes)},
		{flag: "quota-stored-bytes", env: "COMMONOPS_QUOTA_STORED_BYTES", def: fmtSize(operations.QuotaStoredBytesDefault), usage: "bytes the files of one tenant's tasks may hold; at or over it creates are answered 507 until deletes free some; 0: no quota", value: quota(&c.QuotaStoredBytes)},
		{flag: "flow-limits", env: "COMMONOPS_FLOW_LIMITS", usage: "concurrency limits across replicas, stored at start where none is stored yet (the API changes them): TYPE=N for every tenant together, TENANT/TYPE=N (comma list)", value: str(&c.FlowLimits)},
		{flag: "fair-weights", env: "COMMONOPS_FAIR_WEIGHTS", usage: "tenants' weights in the claims' fair turns, TENANT=N (comma list); others weigh 1", value: str(&c.FairWeights)},
		{flag: "fair-half-life", env: "COMMONOPS_FAIR_HALF_LIFE", def: fmtDuration(operations.FairHalfLifeDefault), usage: "how fast a tenant's recent claims fade from its share of the turns; off (or 0): running tasks only", value: durationOrOff(&c.FairHalfLife)},
		{flag: "pubsub", env: "COMMONOPS_PUBSUB", def: app.PubSubEmbedded, usage: "pub/sub: embedded (in-process bus) or dapr (a Dapr sidecar)", value: str(&c.PubSub)},
		{flag: "dapr-url", env: "COMMONOPS_DAPR_URL", usage: "Dapr sidecar HTTP URL; empty: http://127.0.0.1:$DAPR_HTTP_PORT (3500)", value: str(&c.DaprURL)},
		{flag: "dapr-app-addr", env: "COMMONOPS_DAPR_APP_ADDR", def: app.DaprAppAddrDefault, usage: "listen address of the Dapr subscription routes, apart from the API (the sidecar's --app-port); outside loopback set APP_API_TOKEN", value: str(&c.DaprAppAddr)},
		{flag: "dapr-pubsub", env: "COMMONOPS_DAPR_PUBSUB", def: dapr.PubSubNameDefault, usage: "name of the Dapr pub/sub component", value: str(&c.DaprPubSub)},
		{flag: "dapr-broadcast-pubsub", env: "COMMONOPS_DAPR_BROADCAST_PUBSUB", usage: "Dapr pub/sub component with a consumer group per replica that carries cancels to every replica (deploy/dapr/broadcast.yaml); empty: cancels go through dapr-pubsub and reach one replica", value: str(&c.DaprBroadcastPubSub)},
		{flag: "dapr-topics", env: "COMMONOPS_DAPR_TOPICS", usage: "topics published to Dapr, a comma list of created, progress, retried, cancelled, completed, failed; must hold created, retried, cancelled (the worker's); empty: every topic. Where the worker is the only subscriber, created,retried,cancelled spares the sidecar the others", value: str(&c.DaprTopics)},
		{flag: "auth", env: "COMMONOPS_AUTH", def: string(auth.ModeNone), usage: "authentication: none (identity headers trusted; keep the port private), gateway (an API gateway with a shared secret) or oidc (bearer JWTs); API keys work in gateway and oidc", value: str(&c.Auth)},
		{flag: "gateway-secret", env: "COMMONOPS_GATEWAY_SECRET", usage: "secret the API gateway sends on every request (gateway mode)", secret: true, value: str(&c.GatewaySecret)},
		{flag: "gateway-secret-header", env: "COMMONOPS_GATEWAY_SECRET_HEADER", def: auth.GatewaySecretHeaderDefault, usage: "header of the gateway secret", value: str(&c.GatewaySecretHeader)},
		{flag: "tenant-header", env: "COMMONOPS_TENANT_HEADER", def: auth.TenantHeaderDefault, usage: "header of the tenant (gateway mode), or of a platform admin's chosen tenant", value: str(&c.TenantHeader)},
		{flag: "user-header", env: "COMMONOPS_USER_HEADER", def: auth.UserHeaderDefault, usage: "header of the user the gateway authenticated", value: str(&c.UserHeader)},
		{flag: "roles-header", env: "COMMONOPS_ROLES_HEADER", def: auth.RolesHeaderDefault, usage: "header of the user's roles, a comma list (gateway mode)", value: str(&c.RolesHeader)},
		{flag: "platform-admin-role", env: "COMMONOPS_PLATFORM_ADMIN_ROLE", def: auth.PlatformAdminRoleDefault, usage: "role value (gateway roles header, token roles claim) of a platform admin, who may act in every tenant", value: str(&c.PlatformAdminRole)},
		{flag: "oidc-issuer", env: "COMMONOPS_OIDC_ISSUER", usage: "OIDC issuer URL whose tokens the oidc mode accepts", value: str(&c.OIDCIssuer)},
		{flag: "oidc-audience", env: "COMMONOPS_OIDC_AUDIENCE", usage: "audience an OIDC token must name", value: str(&c.OIDCAudience)},
		{flag: "oidc-tenant-claim", env: "COMMONOPS_OIDC_TENANT_CLAIM", def: "tenant", usage: "token claim of the tenant", value: str(&c.OIDCTenantClaim)},
		{flag: "oidc-subject-claim", env: "COMMONOPS_OIDC_SUBJECT_CLAIM", def: "sub", usage: "token claim of the subject", value: str(&c.OIDCSubjectClaim)},
		{flag: "oidc-roles-claim", env: "COMMONOPS_OIDC_ROLES_CLAIM", def: "roles", usage: "token claim of the roles", value: str(&c.OIDCRolesClaim)},
		{flag: "oidc-task-types-claim", env: "COMMONOPS_OIDC_TASK_TYPES_CLAIM", def: "task_types", usage: "token claim of the task types a worker may claim", value: str(&c.OIDCTaskTypesClaim)},
		{flag: "oidc-console-client-id", env: "COMMONOPS_OIDC_CONSOLE_CLIENT_ID", usage: "the console's client at the OIDC issuer (oidc mode): its log-in page then offers a log-in with the issuer; register the redirect URI PUBLIC_URL/console/oidc/callback", value: str(&c.OIDCConsoleClientID)},
		{flag: "oidc-console-client-secret", env: "COMMONOPS_OIDC_CONSOLE_CLIENT_SECRET", usage: "the console client's secret; empty for a public client (PKCE alone)", secret: true, value: str(&c.OIDCConsoleClientSecret)},
		{flag: "oidc-console-scopes", env: "COMMONOPS_OIDC_CONSOLE_SCOPES", def: "openid", usage: "scopes the console asks for at log-in (space or comma list; openid is always asked)", value: str(&c.OIDCConsoleScopes)},
		{flag: "rate-limit", env: "COMMONOPS_RATE_LIMIT", usage: "requests/s of one caller (key, token subject, user), per replica; empty: " + strconv.Itoa(app.RateLimitDefault) + " with auth on, off with none; negative: off", value: rate(&c.RateLimit)},
		{flag: "rate-burst", env: "COMMONOPS_RATE_BURST", usage: "burst of one caller; empty: " + strconv.Itoa(app.RateBurstDefault) + " with auth on", value: size(&c.RateBurst)},
		{flag: "tenant-rate-limit", env: "COMMONOPS_TENANT_RATE_LIMIT", usage: "requests/s of one tenant, per replica; empty: " + strconv.Itoa(app.TenantRateLimitDefault) + " with auth on, off with none; negative: off", value: rate(&c.TenantRateLimit)},
		{flag: "tenant-rate-burst", env: "COMMONOPS_TENANT_RATE_BURST", usage: "burst of one tenant; empty: " + strconv.Itoa(app.TenantRateBurstDefault) + " with auth on", value: size(&c.TenantRateBurst)},
		{flag: "lease", env: "COMMONOPS_LEASE", def: fmtDuration(operations.LeaseDefault), usage: "lease a worker holds a task for between heartbeats (at least 1s)", value: duration(&c.Lease)},
		{flag: "worker-concurrency", env: "COMMONOPS_WORKER_CONCURRENCY", def: strconv.Itoa(worker.ConcurrencyDefault), usage: "tasks the built-in worker runs at once (most wait on I/O; cap heavy types with worker-type-concurrency)", value: number(&c.WorkerConcurrency)},
		{flag: "worker-type-concurrency", env: "COMMONOPS_WORKER_TYPE_CONCURRENCY", usage: "per-taskType caps within worker-concurrency, e.g. import=2,export=4; empty: none", value: caps(&c.WorkerTypeConcurrency)},
		{flag: "task-timeouts", env: "COMMONOPS_TASK_TIMEOUTS", usage: "per-taskType timeoutSeconds of creates that name none, e.g. import=30m,export=1h; an attempt past it fails with a timeout error and is retried; empty: none", value: timeouts(&c.TaskTimeouts)},
		{flag: "poll-interval", env: "COMMONOPS_POLL_INTERVAL", def: fmtDuration(worker.PollIntervalDefault), usage: "fallback poller interval: finds runnable tasks no event started", value: duration(&c.PollInterval)},
		{flag: "upload-sweep-interval", env: "COMMONOPS_UPLOAD_SWEEP_INTERVAL", def: fmtDuration(maintenance.UploadSweepIntervalDefault), usage: "how often maintenance looks for uploads nobody confirmed", value: duration(&c.UploadSweepInterval)},
		{flag: "unclaimed-timeout", env: "COMMONOPS_UNCLAIMED_TIMEOUT", def: fmtDuration(maintenance.UnclaimedTimeoutDefault), usage: "fail a pending task no worker claimed within this time", value: duration(&c.UnclaimedTimeout)},
		{flag: "retention-completed", env: "COMMONOPS_RETENTION_COMPLETED", def: fmtDuration(maintenance.RetentionCompletedDefault), usage: "delete completed tasks (with files) after this age", value: duration(&c.RetentionCompleted)},
		{flag: "retention-failed", env: "COMMONOPS_RETENTION_FAILED", def: fmtDuration(maintenance.RetentionFailedDefault), usage: "delete failed tasks after this age", value: duration(&c.RetentionFailed)},
		{flag: "retention-cancelled", env: "COMMONOPS_RETENTION_CANCELLED", def: fmtDuration(maintenance.RetentionCancelledDefault), usage: "delete cancelled tasks after this age", value: duration(&c.RetentionCancelled)},
		{flag: "outbox-retention", env: "COMMONOPS_OUTBOX_RETENTION", def: fmtDuration(maintenance.OutboxRetentionDefault), usage: "keep published outbox rows this long; 0 deletes them as they are published (each task's history stays in its events)", value: duration(&c.OutboxRetention)},
		{flag: "webhook-secret", env: "COMMONOPS_WEBHOOK_SECRET", usage: "service secret each tenant's webhook signing key derives from (README, Completion webhooks); empty: no webhooks, callbackUrl is refused", secret: true, value: str(&c.WebhookSecret)},
		{flag: "webhook-allow", env: "COMMONOPS_WEBHOOK_ALLOW", usage: "CIDR prefixes, addresses and host names webhooks may reach although internal (loopback, private, link-local), comma list; empty: none", value: str(&c.WebhookAllow)},
		{flag: "webhook-timeout", env: "COMMONOPS_WEBHOOK_TIMEOUT", def: fmtDuration(webhook.TimeoutDefault), usage: "bound of each webhook POST; a slower endpoint is a failed attempt, retried with backoff", value: duration(&c.WebhookTimeout)},
		{flag: "config", env: "COMMONOPS_CONFIG", usage: "YAML file of entities for the built-in import and export processors", value: str(&c.ConfigFile)},
		{flag: "log-level", env: "COMMONOPS_LOG_LEVEL", def: "info", usage: "debug, info, warn or error", value: str(&o.LogLevel)},
		{flag: "drain-delay", env: "COMMONOPS_DRAIN_DELAY", def: "0s", usage: "on SIGTERM, keep serving with /readyz answering 503 this long before draining, so load balancers stop sending requests", value: duration(&c.DrainDelay)},
		{flag: "shutdown-timeout", env: "COMMONOPS_SHUTDOWN_TIMEOUT", def: fmtDuration(app.ShutdownTimeoutDefault), usage: "how long SIGTERM waits for requests and running tasks; tasks still running then go back to pending", value: duration(&c.ShutdownTimeout)},
		{flag: "debug-addr", env: "COMMONOPS_DEBUG_ADDR", usage: "listen address of a separate pprof server (/debug/pprof/); empty: off", value: str(&c.DebugAddr)},
	}
}

// appTokenEnv is Dapr's own convention: the sidecar run with APP_API_TOKEN
// sends it on every delivery, and the app refuses deliveries without it.
const appTokenEnv = "APP_API_TOKEN"

// apiTokenEnv is Dapr's other convention: a sidecar run with
// DAPR_API_TOKEN refuses calls without it, so the app sends it on each.
const apiTokenEnv = "DAPR_API_TOKEN"

// source tells where a setting's value came from.
type source string

const (
	fromDefault source = "default"
	fromEnv     source = "environment"
	fromFlag    source = "flag"
)

// parseOptions reads args (after the subcommand) over the environment over
// the defaults, and reports where each setting came from.
// extra adds flags of a subcommand beside the settings.
func parseOptions(name string, args []string, getenv func(string) string, stderr io.Writer, extra ...func(*flag.FlagSet)) (*options, map[string]source, error) {
	o := &options{}
	sources := map[string]source{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, add := range extra {
		add(fs)
	}
	settings := o.settings()
	for _, s := range settings {
		if s.def != "" {
			if err := s.value.Set(s.def); err != nil {
				panic(fmt.Sprintf("default of --%s: %v", s.flag, err)) // a programming error
			}
		}
		if fs.Lookup(s.flag) != nil {
			continue // the subcommand's own flag of that name wins (apikey --roles)
		}
		fs.Var(s.value, s.flag, s.usage+" ($"+s.env+")")
		sources[s.flag] = fromDefault
	}
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			if err := s.value.Set(v); err != nil {
				return nil, nil, fmt.Errorf("$%s: %w", s.env, err)
			}
			sources[s.flag] = fromEnv
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { sources[f.Name] = fromFlag })
	if o.DaprURL == "" {
		o.DaprURL = dapr.DefaultBaseURL(getenv)
	}
	o.DaprAppToken = getenv(appTokenEnv)
	o.DaprAPIToken = getenv(apiTokenEnv)
	return o, sources, o.Validate()
}

// printEffective writes the settings in force: value, where it came from,
// and the default, with secrets masked.
func printEffective(w io.Writer, o *options, sources map[string]source) {
	fmt.Fprintln(w, "| flag | environment | value | from | default |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, s := range o.settings() {
		v := s.value.String()
		if s.secret {
			v = mask(v)
		}
		fmt.Fprintf(w, "| `--%s` | `%s` | %s | %s | %s |\n", s.flag, s.env, cell(v), sources[s.flag], cell(s.def))
	}
	token := "unset: deliveries are not checked"
	if o.DaprAppToken != "" {
		token = "set"
	}
	fmt.Fprintf(w, "| — | `%s` | %s | environment | — |\n", appTokenEnv, token)
	token = "unset: no dapr-api-token sent"
	if o.DaprAPIToken != "" {
		token = "set"
	}
	fmt.Fprintf(w, "| — | `%s` | %s | environment | — |\n", apiTokenEnv, token)
}

// printTable writes the settings and their defaults as a Markdown table
// (the README's).
func printTable(w io.Writer) {
	fmt.Fprintln(w, "| flag | environment | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, s := range (&options{}).settings() {
		fmt.Fprintf(w, "| `--%s` | `%s` | %s | %s |\n", s.flag, s.env, cell(s.def), s.usage)
	}
}

func cell(v string) string {
	if v == "" {
		return "—"
	}
	return "`" + v + "`"
}

// mask hides a secret: a URL keeps all but its password, anything else
// shows only that it is set.
func mask(v string) string {
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return strings.Replace(u.String(), "xxxxx", "****", -1)
	}
	return "****"
}

// value is a flag.Value over one field. String shows the field's value, so
// `serve -h` prints each default.
type value struct {
	get    func() string
	set    func(string) error
	isBool bool
}

func (v *value) String() string {
	if v == nil || v.get == nil {
		return ""
	}
	return v.get()
}

func (v *value) Set(s string) error { return v.set(s) }

// IsBoolFlag lets a boolean flag stand alone (--s3-use-ssl).
func (v *value) IsBoolFlag() bool { return v != nil && v.isBool }

func str(p *string) *value {
	return &value{get: func() string { return *p }, set: func(s string) error { *p = s; return nil }}
}

func boolean(p *bool) *value {
	return &value{isBool: true, get: func() string { return strconv.FormatBool(*p) }, set: func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		*p = b
		return nil
	}}
}

func duration(p *time.Duration) *value {
	return &value{get: func() string { return fmtDuration(*p) }, set: func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("want a duration such as 30s or 15m, got %q", s)
		}
		*p = d
		return nil
	}}
}

// durationOrOff is duration, or off (also written 0) for a negative one.
func durationOrOff(p *time.Duration) *value {
	d := duration(p)
	return &value{get: func() string {
		if *p < 0 {
			return "off"
		}
		return d.get()
	}, set: func(s string) error {
		if strings.EqualFold(s, "off") {
			*p = -1
			return nil
		}
		if err := d.set(s); err != nil {
			return fmt.Errorf("want a duration such as 2s, or off, got %q", s)
		}
		if *p == 0 {
			*p = -1 // 0 reads as "no memory", not as the default
		}
		return nil
	}}
}

func size[T int | int64](p *T) *value {
	return &value{get: func() string { return fmtSize(int64(*p)) }, set: func(s string) error {
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		*p = T(n)
		return nil
	}}
}

// number reads a whole number (no size suffixes: "4096", not "4KiB").
func number(p *int) *value {
	return &value{get: func() string { return strconv.Itoa(*p) }, set: func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return fmt.Errorf("want a non-negative whole number, got %q", s)
		}
		*p = n
		return nil
	}}
}

// quota is size for a quota, where 0 is no quota: the Config field holds
// it as -1, since a zero field takes the default.
func quota[T int | int64](p *T) *value {
	return &value{get: func() string { return fmtSize(int64(max(*p, 0))) }, set: func(s string) error {
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		*p = T(n)
		if n == 0 {
			*p = -1
		}
		return nil
	}}
}

// rate reads requests per second (a decimal number; negative: off).
func rate(p *float64) *value {
	return &value{get: func() string {
		if *p == 0 {
			return ""
		}
		return strconv.FormatFloat(*p, 'f', -1, 64)
	}, set: func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("want requests per second such as 50 or 0.5, got %q", s)
		}
		*p = f
		return nil
	}}
}

// caps reads per-taskType caps ("import=2,export=4").
func caps(p *map[string]int) *value {
	return &value{get: func() string {
		parts := make([]string, 0, len(*p))
		for k, n := range *p {
			parts = append(parts, k+"="+strconv.Itoa(n))
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}, set: func(s string) error {
		m := map[string]int{}
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, v, ok := strings.Cut(part, "=")
			n, err := strconv.Atoi(v)
			if !ok || name == "" || err != nil || n < 1 {
				return fmt.Errorf("want taskType=N pairs such as import=2,export=4, got %q", part)
			}
			m[name] = n
		}
		*p = m
		return nil
	}}
}

// timeouts reads per-taskType durations ("import=30m,export=1h").
func timeouts(p *map[string]time.Duration) *value {
	return &value{get: func() string {
		parts := make([]string, 0, len(*p))
		for k, d := range *p {
			parts = append(parts, k+"="+fmtDuration(d))
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}, set: func(s string) error {
		m := map[string]time.Duration{}
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, v, ok := strings.Cut(part, "=")
			d, err := time.ParseDuration(v)
			if !ok || name == "" || err != nil || d < time.Second || d > commonops.MaxTimeoutSeconds*time.Second {
				return fmt.Errorf("want taskType=duration pairs from 1s to 168h such as import=30m,export=1h, got %q", part)
			}
			m[name] = d
		}
		*p = m
		return nil
	}}
}

// parseSize reads a non-negative integer with an optional KiB/MiB/GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range sizeUnits {
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

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// fmtSize writes n in the largest unit that divides it.
func fmtSize(n int64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// fmtDuration writes d without zero minutes and seconds ("720h", not
// "720h0m0s").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
