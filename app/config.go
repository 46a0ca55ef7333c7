package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/webhook"
)

// Roles a process can run.
const (
	RoleAPI         = "api"
	RoleWorker      = "worker"
	RoleMaintenance = "maintenance"
)

// Defaults of Config that no other package owns. The others are the
// constants of the package that uses the setting (operations.LeaseDefault,
// worker.ConcurrencyDefault, maintenance.RetentionCompletedDefault, ...).
const (
	// AddrDefault is the HTTP listen address.
	AddrDefault = ":8080"
	// RolesDefault runs every role in one process.
	RolesDefault = RoleAPI + "," + RoleWorker + "," + RoleMaintenance
	// DataDirDefault holds the embedded SQLite file and the local files.
	DataDirDefault = "./data"
	// DBMaxConnsDefault is the PostgreSQL pool size of one process: room for
	// the grouped hot writes, reads, open event streams and the LISTEN
	// connection.
	DBMaxConnsDefault = 32
	// StorageLocal keeps files under DataDir/files, served by commonops;
	// StorageS3 uses an S3-compatible store.
	StorageLocal = "local"
	StorageS3    = "s3"
	// PubSubEmbedded is the in-process bus; PubSubDapr a Dapr sidecar.
	PubSubEmbedded = "embedded"
	PubSubDapr     = "dapr"
	// MaxConnectionsDefault caps the open HTTP connections of one process
	// (the API, files): past it new connections wait in the listen backlog
	// until one closes. Each costs some 20 KiB while idle.
	MaxConnectionsDefault = 4096
	// IdleTimeoutDefault closes a keep-alive connection that sends no new
	// request for this long.
	IdleTimeoutDefault = 60 * time.Second
	// DaprAppAddrDefault is where the Dapr sidecar delivers events (its
	// --app-port): loopback, as the sidecar runs beside the process, so the
	// public API port never accepts a delivery.
	DaprAppAddrDefault = "127.0.0.1:8081"
	// ShutdownTimeoutDefault bounds a graceful stop: in-flight requests
	// and running tasks.
	ShutdownTimeoutDefault = 30 * time.Second
	// RateLimitDefault and RateBurstDefault are the rate limit of one
	// caller with auth on; TenantRateLimitDefault and
	// TenantRateBurstDefault of one tenant.
	RateLimitDefault       = 50
	RateBurstDefault       = 100
	TenantRateLimitDefault = 500
	TenantRateBurstDefault = 1000
)

// Config is every setting of the stock server. Field names follow the
// flags of `commonops serve` (RetentionCompleted is --retention-completed);
// zero fields take their defaults, so Config{} is the embedded default:
// SQLite under ./data, local files, the in-process bus, every role, :8080.
type Config struct {
	// Addr is the HTTP listen address; port 0 picks a free port (see
	// App.Addr). Defaults to AddrDefault (":8080").
	Addr string
	// Roles is a comma list of api, worker and maintenance. Defaults to
	// RolesDefault (all three).
	Roles string
	// DatabaseURL is a postgres:// URL for PostgreSQL, "sqlite:PATH" for a
	// SQLite file, or empty for DataDir/commonops.db. Defaults to "".
	DatabaseURL string
	// DBMaxConns is the PostgreSQL pool size of this process. Defaults to
	// DBMaxConnsDefault (32).
	DBMaxConns int
	// DBWarmConns is how many PostgreSQL connections (at most DBMaxConns)
	// the process opens and warms at start and keeps open, so that the
	// first burst of requests does not wait for PostgreSQL to load its
	// catalog into each new connection (postgres.Config.WarmConns). The
	// command line defaults it to DBMaxConnsDefault (--db-warm-conns);
	// here 0 opens connections on demand, as the tests do.
	DBWarmConns int
	// ReadTimeout bounds each read the API serves (get, list, logs,
	// events); one that takes longer answers 503. Negative: no bound.
	// Defaults to store.ReadTimeoutDefault (5s).
	ReadTimeout time.Duration
	// DataDir holds the embedded SQLite database and the local files.
	// Defaults to DataDirDefault ("./data").
	DataDir string
	// MaxConnections caps the open HTTP connections of the API listener.
	// Defaults to MaxConnectionsDefault (4096).
	MaxConnections int
	// IdleTimeout closes keep-alive connections idle this long. Defaults to
	// IdleTimeoutDefault (60s).
	IdleTimeout time.Duration
	// PublicURL is the base URL clients reach this service at, put in the
	// local store's file URLs. Defaults to http://localhost:PORT.
	PublicURL string

	// Storage is StorageLocal or StorageS3. Defaults to StorageLocal.
	Storage string
	// S3Endpoint is the host:port the service reaches S3 at. Required with
	// StorageS3.
	S3Endpoint string
	// S3PublicEndpoint is the host:port put in URLs handed to clients.
	// Defaults to S3Endpoint.
	S3PublicEndpoint string
	// S3Region is the bucket's region. Defaults to objectstore.RegionDefault.
	S3Region string
	// S3Bucket holds every object. Required with StorageS3.
	S3Bucket string
	// S3AccessKey and S3SecretKey are the credentials. Default to "".
	S3AccessKey, S3SecretKey string
	// S3UseSSL reaches S3 over https. Defaults to false.
	S3UseSSL bool
	// S3PathStyle forces path-style bucket addressing; false picks it from
	// the endpoint (path style for MinIO, versitygw, addresses). The flag
	// defaults to true. Defaults to false.
	S3PathStyle bool
	// S3CreateBucket creates the bucket at start when it is missing.
	// Defaults to false.
	S3CreateBucket bool
	// S3CORSOrigins is the comma list of the origins (scheme://host[:port])
	// the console is opened at, whose browsers upload to the bucket: at
	// start a process with the api role writes the bucket's CORS rule for
	// them (objectstore.CORSRuleID, the bucket's other rules kept).
	// Defaults to "": the bucket's CORS configuration is left alone.
	S3CORSOrigins string

	// URLExpiry is the lifetime of upload and download URLs, at most
	// objectstore.URLExpiryMax. Defaults to objectstore.URLExpiryDefault.
	URLExpiry time.Duration
	// MaxFileSize is the largest input file accepted. Defaults to
	// commonops.MaxFileSizeDefault (5 GiB).
	MaxFileSize int64
	// MaxConcurrentUploads bounds the PUTs the local store takes at once;
	// one more is answered 503 with Retry-After. Defaults to
	// objectstore.MaxConcurrentUploadsDefault (64).
	MaxConcurrentUploads int
	// MinTransferRate is the pace, in bytes a second, an upload body or a
	// download of the local store must keep up, TransferGrace the most it
	// may fall behind; a slower upload is aborted with 408. Negative: no
	// minimum. Default to objectstore.MinTransferRateDefault (1 KiB/s) and
	// objectstore.TransferGraceDefault (10s).
	MinTransferRate int64
	TransferGrace   time.Duration
	// MaxStreams and MaxTenantStreams bound the open event streams of this
	// process, and of one tenant; one more is answered 429. Default to
	// httpapi.MaxStreamsDefault (1,000) and httpapi.MaxTenantStreamsDefault
	// (100).
	MaxStreams, MaxTenantStreams int
	// MaxParamsBytes is the largest params object accepted. Defaults to
	// commonops.MaxParamsBytesDefault (64 KiB).
	MaxParamsBytes int
	// MaxBodyBytes is the largest request body accepted. Defaults to
	// httpapi.MaxBodyBytesDefault (1 MiB).
	MaxBodyBytes int64

	// QuotaCreatesPerMinute bounds the tasks one tenant creates in any
	// minute, across replicas; one more is answered 429. Negative: no
	// quota. Defaults to operations.QuotaCreatesPerMinuteDefault (600).
	QuotaCreatesPerMinute int
	// QuotaConcurrentHeavy bounds one tenant's unfinished (scheduled,
	// pending or processing) tasks of QuotaHeavyTypes; a create of one
	// more is answered 429. Negative: no quota. Defaults to
	// operations.QuotaConcurrentHeavyDefault (20).
	QuotaConcurrentHeavy int
	// QuotaHeavyTypes is the comma list of task types QuotaConcurrentHeavy
	// counts. Defaults to operations.QuotaHeavyTypesDefault
	// ("import,export").
	QuotaHeavyTypes string
	// QuotaStoredBytes bounds the bytes one tenant's task files hold; at
	// or over it creates are answered 507 until deletes free some (tasks
	// already running may pass it). Negative: no quota. Defaults to
	// operations.QuotaStoredBytesDefault (100 GiB).
	QuotaStoredBytes int64

	// FlowLimits are the concurrency limits stored at start where no flow
	// control of the same scope is stored yet (the API changes them
	// without a restart, and a restart keeps what it set): comma-separated
	// TYPE=N (every tenant together) and TENANT/TYPE=N. Defaults to none.
	FlowLimits string
	// FairWeights are the tenants' weights in the claims' turns,
	// comma-separated TENANT=N; a tenant not named weighs 1. Defaults to
	// none.
	FairWeights string
	// FairHalfLife is how fast a tenant's recent claims fade from its
	// share of the claims' turns. Defaults to
	// operations.FairHalfLifeDefault (2s); negative: a share counts the
	// tenant's running tasks only.
	FairHalfLife time.Duration

	// PubSub is PubSubEmbedded or PubSubDapr. Defaults to PubSubEmbedded.
	PubSub string
	// DaprURL is the sidecar's HTTP URL. Defaults to
	// http://127.0.0.1:$DAPR_HTTP_PORT (3500).
	DaprURL string
	// DaprPubSub is the Dapr pub/sub component's name. Defaults to
	// dapr.PubSubNameDefault ("pubsub").
	DaprPubSub string
	// DaprAppAddr is the listen address of the Dapr subscription routes
	// (/dapr/subscribe and the deliveries), apart from the API: point the
	// sidecar's --app-port at it. Used with PubSubDapr and the worker role;
	// port 0 picks a free port (see App.DaprAppAddr). Defaults to
	// DaprAppAddrDefault ("127.0.0.1:8081").
	DaprAppAddr string
	// DaprAppToken is the token each Dapr delivery must carry (the
	// sidecar's APP_API_TOKEN); required when DaprAppAddr is not loopback.
	// Defaults to "": deliveries are not checked.
	DaprAppToken string

	// DaprBroadcastPubSub, when set, is the Dapr pub/sub component that
	// carries the cancelled events, with a consumer group per replica
	// (deploy/dapr/broadcast.yaml), so that a cancel reaches the replica
	// running the task at once rather than at its next heartbeat. Defaults
	// to "": cancels go through DaprPubSub like every event.
	DaprBroadcastPubSub string

	// DaprTopics is the comma list of the topics published to Dapr
	// ("created" or "operations.task.created"; see ParseDaprTopics). It
	// must hold the worker's topics (commonops.WorkerTopics). Defaults to
	// "": every topic, for any subscriber. A deployment whose only
	// subscriber is commonops's worker lists the worker's three, and the
	// changes of the others (progress, completed, failed) queue no outbox
	// row, cost the sidecar nothing and stay in task_events and webhooks.
	DaprTopics string

	// DaprAPIToken is the token the sidecar requires of its app (its
	// DAPR_API_TOKEN), sent as dapr-api-token on every call to it.
	// Defaults to "": none sent.
	DaprAPIToken string

	// Auth is how callers are authenticated: none (the identity headers
	// are trusted; anyone reaching the port is every role of any tenant),
	// gateway or oidc; API keys work in the last two. Defaults to none.
	Auth string
	// GatewaySecret is the secret the API gateway sends in
	// GatewaySecretHeader; required with the gateway mode.
	GatewaySecret string
	// GatewaySecretHeader, TenantHeader, UserHeader and RolesHeader name
	// the headers of the gateway mode. Default to X-Gateway-Secret,
	// X-Tenant-Id, X-User-Id and X-User-Roles.
	GatewaySecretHeader, TenantHeader, UserHeader, RolesHeader string
	// PlatformAdminRole is the role value (gateway roles header, token
	// roles claim) that makes a caller a platform admin, who may act in
	// every tenant. Defaults to auth.PlatformAdminRoleDefault
	// ("platform-admin").
	PlatformAdminRole string
	// OIDCIssuer and OIDCAudience are the issuer whose tokens the oidc mode
	// accepts and the audience they must name; the issuer is required with
	// the oidc mode. Default to "".
	OIDCIssuer, OIDCAudience string
	// OIDCTenantClaim, OIDCSubjectClaim, OIDCRolesClaim and
	// OIDCTaskTypesClaim name the token claims of the principal. Default to
	// tenant, sub, roles and task_types.
	OIDCTenantClaim, OIDCSubjectClaim, OIDCRolesClaim, OIDCTaskTypesClaim string
	// OIDCConsoleClientID and OIDCConsoleClientSecret are the console's
	// client at the issuer (oidc mode): with an ID, the console's log-in
	// page offers a log-in with the issuer (authorization code flow with
	// PKCE; register the redirect URI PublicURL + /console/oidc/callback).
	// The secret is "" for a public client. Default to "": API keys only.
	OIDCConsoleClientID, OIDCConsoleClientSecret string
	// OIDCConsoleScopes are the scopes (space or comma list) the console
	// asks for at log-in; the issuer's access tokens must then carry the
	// audience and claims above. Defaults to "openid".
	OIDCConsoleScopes string
	// OIDCHTTPClient fetches the issuer's discovery document and keys and
	// makes the console's code exchanges: set it to trust a private CA
	// (tests, an in-house issuer). Not a flag.
	// Defaults to nil: a client with a 10s timeout.
	OIDCHTTPClient *http.Client
	// RateLimit is the requests per second one caller (API key, token
	// subject, gateway user) may make, in bursts of RateBurst;
	// TenantRateLimit and TenantRateBurst the same for a whole tenant. The
	// limits hold per replica. Negative: no limit. Default, with auth on,
	// to RateLimitDefault (50/s, bursts of 100) and TenantRateLimitDefault
	// (500/s, bursts of 1000); off in the none mode.
	RateLimit       float64
	RateBurst       int
	TenantRateLimit float64
	TenantRateBurst int

	// Lease is how long a claim holds a task between heartbeats. Defaults
	// to operations.LeaseDefault (30s).
	Lease time.Duration
	// WorkerConcurrency is how many tasks the built-in worker runs at once.
	// Defaults to worker.ConcurrencyDefault (32).
	WorkerConcurrency int
	// WorkerTypeConcurrency caps task types within WorkerConcurrency
	// ({"import": 2}). Defaults to no caps.
	WorkerTypeConcurrency map[string]int
	// TaskTimeouts are the timeoutSeconds of each task type's creates that
	// name none ({"import": 30 * time.Minute}). Defaults to none.
	TaskTimeouts map[string]time.Duration
	// PollInterval is the fallback poller's period. Defaults to
	// worker.PollIntervalDefault (2s).
	PollInterval time.Duration

	// UploadSweepInterval is how often maintenance looks for uploads
	// nobody confirmed. Defaults to maintenance.UploadSweepIntervalDefault.
	UploadSweepInterval time.Duration
	// UnclaimedTimeout fails a pending task no worker claimed within it.
	// Defaults to maintenance.UnclaimedTimeoutDefault (10m).
	UnclaimedTimeout time.Duration
	// RetentionCompleted, RetentionFailed and RetentionCancelled are how
	// long terminal tasks are kept, with their files. Default to
	// maintenance's RetentionCompletedDefault (30 days), RetentionFailedDefault
	// (90 days) and RetentionCancelledDefault (30 days).
	RetentionCompleted, RetentionFailed, RetentionCancelled time.Duration
	// OutboxRetention keeps published outbox rows this long; 0 deletes
	// them as they are published. Defaults to
	// maintenance.OutboxRetentionDefault (0).
	OutboxRetention time.Duration

	// WebhookSecret is the service secret each tenant's webhook signing
	// key derives from (webhook.TenantKey). Defaults to "": the service
	// sends no webhooks and refuses callbackUrl and subscriptions.
	WebhookSecret string
	// WebhookAllow lists, comma-separated, the CIDR prefixes, addresses and
	// host names webhooks may reach although they are internal (loopback,
	// private, link-local...). Defaults to "": none.
	WebhookAllow string
	// WebhookTimeout bounds each webhook POST. Defaults to
	// webhook.TimeoutDefault (10s).
	WebhookTimeout time.Duration

	// ConfigFile (the --config flag) is the YAML file of entities for the
	// built-in import and export processors. Defaults to "": only the
	// built-in task entity.
	ConfigFile string

	// DrainDelay is how long Stop keeps serving, with GET /readyz
	// answering 503, before it stops taking requests: the time a load
	// balancer needs to see the replica unready and send it nothing new.
	// Defaults to 0: Stop drains at once.
	DrainDelay time.Duration
	// ShutdownTimeout bounds Stop: in-flight requests, then running tasks,
	// which are handed back to pending when it runs out. Defaults to
	// ShutdownTimeoutDefault (30s).
	ShutdownTimeout time.Duration
	// DebugAddr, when set, serves pprof on its own listener. Defaults to
	// "": off.
	DebugAddr string

	// Version is reported in the start-up log line. Defaults to "dev".
	Version string
	// Logger receives the service's logs. Defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = AddrDefault
	}
	if c.Roles == "" {
		c.Roles = RolesDefault
	}
	if c.DataDir == "" {
		c.DataDir = DataDirDefault
	}
	if c.DBMaxConns <= 0 {
		c.DBMaxConns = DBMaxConnsDefault
	}
	if c.Storage == "" {
		c.Storage = StorageLocal
	}
	if c.PubSub == "" {
		c.PubSub = PubSubEmbedded
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = MaxConnectionsDefault
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = IdleTimeoutDefault
	}
	if c.DaprAppAddr == "" {
		c.DaprAppAddr = DaprAppAddrDefault
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = ShutdownTimeoutDefault
	}
	if c.QuotaCreatesPerMinute == 0 {
		c.QuotaCreatesPerMinute = operations.QuotaCreatesPerMinuteDefault
	}
	if c.QuotaConcurrentHeavy == 0 {
		c.QuotaConcurrentHeavy = operations.QuotaConcurrentHeavyDefault
	}
	if c.QuotaHeavyTypes == "" {
		c.QuotaHeavyTypes = operations.QuotaHeavyTypesDefault
	}
	if c.QuotaStoredBytes == 0 {
		c.QuotaStoredBytes = operations.QuotaStoredBytesDefault
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Auth == "" {
		c.Auth = string(auth.ModeNone)
	}
	if c.Auth != string(auth.ModeNone) {
		if c.RateLimit == 0 {
			c.RateLimit, c.RateBurst = RateLimitDefault, max(c.RateBurst, RateBurstDefault)
		}
		if c.TenantRateLimit == 0 {
			c.TenantRateLimit, c.TenantRateBurst = TenantRateLimitDefault, max(c.TenantRateBurst, TenantRateBurstDefault)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first setting that can never work, naming it as its
// flag does. New calls it; a command line can call it before New.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := parseRoles(c.Roles); err != nil {
		return err
	}
	switch c.Storage {
	case StorageLocal:
	case StorageS3:
		if c.S3Endpoint == "" || c.S3Bucket == "" {
			return errors.New("storage s3 needs s3-endpoint and s3-bucket (COMMONOPS_S3_ENDPOINT, COMMONOPS_S3_BUCKET)")
		}
	default:
		return fmt.Errorf("storage: want %s or %s, got %q", StorageLocal, StorageS3, c.Storage)
	}
	if _, err := objectstore.ParseOrigins(c.S3CORSOrigins); err != nil {
		return fmt.Errorf("s3-cors-origins: %w", err)
	}
	if c.S3CORSOrigins != "" && c.Storage != StorageS3 {
		return fmt.Errorf("s3-cors-origins: wants storage %s, got %s (the local store serves uploads at the console's own origin)", StorageS3, c.Storage)
	}
	if _, err := operations.ParseFlowLimits(c.FlowLimits); err != nil {
		return fmt.Errorf("flow-limits: %w", err)
	}
	if _, err := operations.ParseFairWeights(c.FairWeights); err != nil {
		return fmt.Errorf("fair-weights: %w", err)
	}
	if c.PubSub != PubSubEmbedded && c.PubSub != PubSubDapr {
		return fmt.Errorf("pubsub: want %s or %s, got %q", PubSubEmbedded, PubSubDapr, c.PubSub)
	}
	if c.URLExpiry < 0 || c.URLExpiry > objectstore.URLExpiryMax {
		return fmt.Errorf("url-expiry: want between 1s and %s, got %s", objectstore.URLExpiryMax, c.URLExpiry)
	}
	if c.MaxConcurrentUploads < 0 {
		return fmt.Errorf("max-concurrent-uploads: want at least 1, got %d", c.MaxConcurrentUploads)
	}
	if c.TransferGrace < 0 {
		return fmt.Errorf("transfer-grace: want a positive duration, got %s", c.TransferGrace)
	}
	if c.Lease != 0 && c.Lease < time.Second {
		return fmt.Errorf("lease: want at least 1s, got %s", c.Lease)
	}
	if c.DrainDelay < 0 {
		return fmt.Errorf("drain-delay: want 0 or a positive duration, got %s", c.DrainDelay)
	}
	if c.DaprBroadcastPubSub != "" && c.DaprBroadcastPubSub == c.DaprPubSub {
		return fmt.Errorf("dapr-broadcast-pubsub: want a component other than dapr-pubsub %q (one with a consumer group per replica)", c.DaprPubSub)
	}
	if c.DaprTopics != "" && c.PubSub != PubSubDapr {
		return fmt.Errorf("dapr-topics: wants pubsub %s, got %s (the embedded bus carries the worker's topics only)", PubSubDapr, c.PubSub)
	}
	if _, err := ParseDaprTopics(c.DaprTopics); err != nil {
		return fmt.Errorf("dapr-topics: %w", err)
	}
	if c.DBWarmConns < 0 {
		return fmt.Errorf("db-warm-conns: want 0 or more, got %d", c.DBWarmConns)
	}
	if c.WorkerConcurrency < 0 {
		return fmt.Errorf("worker-concurrency: want at least 1, got %d", c.WorkerConcurrency)
	}
	switch auth.Mode(c.Auth) {
	case auth.ModeNone:
	case auth.ModeGateway:
		if c.GatewaySecret == "" {
			return errors.New("auth gateway needs gateway-secret (COMMONOPS_GATEWAY_SECRET), the secret the gateway sends on every request")
		}
	case auth.ModeOIDC:
		if c.OIDCIssuer == "" {
			return errors.New("auth oidc needs oidc-issuer (COMMONOPS_OIDC_ISSUER)")
		}
	default:
		return fmt.Errorf("auth: want none, gateway or oidc, got %q", c.Auth)
	}
	if c.OIDCConsoleClientID != "" && auth.Mode(c.Auth) != auth.ModeOIDC {
		return fmt.Errorf("oidc-console-client-id needs auth oidc (COMMONOPS_AUTH=oidc), got auth %s", c.Auth)
	}
	if c.OIDCConsoleClientID != "" && c.OIDCConsoleClientID == c.OIDCAudience {
		// An ID token is issued to the client as its audience: it would
		// pass as an access token of the API.
		return fmt.Errorf("oidc-console-client-id %q is the API's oidc-audience: register the console as a client of its own", c.OIDCConsoleClientID)
	}
	for name, n := range c.WorkerTypeConcurrency {
		if name == "" || n < 1 {
			return fmt.Errorf("worker-type-concurrency: want taskType=N with N at least 1, got %q=%d", name, n)
		}
	}
	if _, err := c.webhookGuard(); err != nil {
		return fmt.Errorf("webhook-allow: %w", err)
	}
	return nil
}

// webhookGuard is the webhook.Guard of c.WebhookAllow.
func (c Config) webhookGuard() (*webhook.Guard, error) {
	return webhook.NewGuard(strings.Split(c.WebhookAllow, ","))
}

// quotas are the operations.Quotas of c (with its defaults applied): a
// negative setting is no quota.
func (c Config) quotas() operations.Quotas {
	return operations.Quotas{
		CreatesPerMinute: max(c.QuotaCreatesPerMinute, 0),
		ConcurrentHeavy:  max(c.QuotaConcurrentHeavy, 0),
		HeavyTypes:       operations.ParseHeavyTypes(c.QuotaHeavyTypes),
		StoredBytes:      max(c.QuotaStoredBytes, 0),
	}
}

// parseRoles reads a comma list of roles.
func parseRoles(s string) (map[string]bool, error) {
	roles := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		switch r = strings.TrimSpace(r); r {
		case RoleAPI, RoleWorker, RoleMaintenance:
			roles[r] = true
		default:
			return nil, fmt.Errorf("roles: unknown role %q (want api, worker, maintenance)", r)
		}
	}
	return roles, nil
}

// busTopics are the topics c's processes queue for their bus, nil for
// every topic: the worker's on the embedded bus, which reaches only this
// process's worker; through Dapr, which delivers to any subscriber, every
// topic unless DaprTopics names fewer.
func (c Config) busTopics() ([]string, error) {
	if c.PubSub == PubSubEmbedded {
		return commonops.WorkerTopics, nil
	}
	return ParseDaprTopics(c.DaprTopics)
}

// ParseDaprTopics reads a comma list of topics, each named in full
// ("operations.task.completed") or by its last word ("completed"), and
// returns them in full, in the order of commonops.Topics; nil for "" (every
// topic). The list must hold the worker's topics: without created and
// retried a worker claims only when it polls, and without cancelled a
// running task learns of its cancel only at its next heartbeat.
func ParseDaprTopics(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	want := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		topic := name
		if !strings.Contains(name, ".") {
			topic = "operations.task." + name
		}
		if !slices.Contains(commonops.Topics, topic) {
			return nil, fmt.Errorf("unknown topic %q (want a comma list of created, progress, retried, cancelled, completed, failed)", name)
		}
		want[topic] = true
	}
	var missing []string
	for _, t := range commonops.WorkerTopics {
		if !want[t] {
			missing = append(missing, strings.TrimPrefix(t, "operations.task."))
		}
	}
	if missing != nil {
		return nil, fmt.Errorf("the list lacks %s: the worker claims on created and retried and stops a running task on cancelled, so these are always published", strings.Join(missing, ", "))
	}
	var topics []string
	for _, t := range commonops.Topics {
		if want[t] {
			topics = append(topics, t)
		}
	}
	return topics, nil
}
