// Package daprtest runs a real Dapr sidecar (daprd v1.14, standalone, no
// control plane) for tests, with a pub/sub component named "pubsub".
//
// Replicas of one app share their broker: Join starts a sidecar on the same
// Redis database and consumer group as another, so the two share the work;
// Broadcast adds the "broadcast" component (a consumer group per sidecar)
// that carries cancels to every replica; Broker(BrokerRabbitMQ) puts both
// on the RabbitMQ at $COMMONOPS_RABBITMQ_URL (default
// amqp://guest:guest@127.0.0.1:5672) instead of Redis.
//
// With the default pubsub.redis component each sidecar gets a Redis database
// of its own (1..15 of the Redis at $COMMONOPS_REDIS_ADDR, default
// 127.0.0.1:6379), leased through a key in database 0 and flushed before and
// after use: pubsub.redis names its streams after the topics and starts new
// consumer groups at the beginning of a stream, so tests sharing a database
// would see each other's (and earlier runs') events. With InMemory the
// component is pubsub.in-memory and Redis is not used.
//
// The binary is $COMMONOPS_DAPRD or ~/.cache/commonops-tools/daprd, which
// .ci/tools.sh builds. Under -short Start skips the test (go test -short
// needs no sidecar and no Redis); without -short a missing binary fails the
// test, it never skips it.
package daprtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sidecar is a running daprd. Stop kills it (the test's cleanup also does);
// Restart stops it if running and starts it again on the same ports, with the
// same app id and Redis streams, and waits until it is ready.
type Sidecar struct {
	HTTPPort int
	GRPCPort int
	BaseURL  string
	// AppID is the sidecar's app id.
	AppID string
	// Group is the consumer group of the pubsub component, shared by the
	// sidecars that Join this one.
	Group string
	// RedisDB is the Redis database the component uses (0 with InMemory or
	// RabbitMQ).
	RedisDB int
	// Stop stops daprd gracefully (SIGTERM), Kill at once (SIGKILL, as a
	// crashed machine would).
	Stop    func()
	Kill    func()
	Restart func()

	broker Broker
}

// Broker is the message broker behind the pub/sub components.
type Broker string

// Brokers Start can run the components on.
const (
	BrokerRedis    Broker = "redis"    // pubsub.redis (Redis Streams), the default
	BrokerRabbitMQ Broker = "rabbitmq" // pubsub.rabbitmq
)

type options struct {
	inMemory    bool
	maxRetries  int
	redeliver   time.Duration
	waitForSubs bool
	apiToken    string
	appToken    string
	join        *Sidecar
	broadcast   bool
	broker      Broker
	httpPort    int
	tracing     bool
}

// Option changes how Start runs the sidecar.
type Option func(*options)

// InMemory uses the pubsub.in-memory component instead of Redis (for
// throughput benchmarks of the publishing side).
func InMemory() Option { return func(o *options) { o.inMemory = true } }

// InboundRetries sets how often the sidecar redelivers an event the app
// answered RETRY before it goes to the dead-letter topic (the resiliency
// policy; 200ms apart). Defaults to 20.
func InboundRetries(n int) Option { return func(o *options) { o.maxRetries = n } }

// APIToken starts the sidecar with DAPR_API_TOKEN=token: it then refuses
// every call of the app that lacks the dapr-api-token header.
func APIToken(token string) Option { return func(o *options) { o.apiToken = token } }

// AppToken starts the sidecar with APP_API_TOKEN=token: it then sends
// token as dapr-api-token on every call to the app (the deliveries).
func AppToken(token string) Option { return func(o *options) { o.appToken = token } }

// Join starts the sidecar as another replica of the app of sc: on the same
// broker, Redis database and consumer group, so that an event of the
// pubsub component reaches one of them.
func Join(sc Sidecar) Option { return func(o *options) { o.join = &sc } }

// Broadcast adds a second pub/sub component, "broadcast", whose consumer
// group is new at each sidecar start ({uuid}): every replica receives each
// of its events (deploy/dapr/broadcast.yaml).
func Broadcast() Option { return func(o *options) { o.broadcast = true } }

// WithBroker runs the components on b. Defaults to BrokerRedis; a sidecar
// that joins another takes that one's broker.
func WithBroker(b Broker) Option { return func(o *options) { o.broker = b } }

// HTTPPort runs the sidecar's HTTP API on port (from FreePort), so that an
// app can be given the sidecar's URL before the sidecar starts, which waits
// for the app's subscriptions.
func HTTPPort(port int) Option { return func(o *options) { o.httpPort = port } }

// FreePort returns a loopback port free at the time of the call, for a
// process started later to listen on (see freePorts).
func FreePort(t testing.TB) int { return freePorts(t, 1)[0] }

// Tracing samples every request in the sidecar (samplingRate "1"), which
// daprd needs to continue a published event's W3C traceparent into the
// delivered one; its own spans go nowhere.
func Tracing() Option { return func(o *options) { o.tracing = true } }

// Readiness timeouts.
const (
	startTimeout = 60 * time.Second
	leaseTTL     = 60 * time.Second
)

// skipShort is why a test that needs daprd skips under -short.
const skipShort = "needs daprd and Redis (COMMONOPS_DAPRD, COMMONOPS_REDIS_ADDR); run scripts/test.sh, or go test without -short"

// Start starts daprd for the app listening on 127.0.0.1:appPort (0: no app,
// publishing only) and waits until its /v1.0/healthz answers 204 and, with an
// app, until the app's subscriptions are loaded. Under -short it skips t.
func Start(t testing.TB, appPort int, opts ...Option) Sidecar {
	t.Helper()
	if testing.Short() {
		t.Skip(skipShort)
	}
	o := options{maxRetries: 20, redeliver: time.Second, waitForSubs: appPort > 0, broker: BrokerRedis}
	for _, opt := range opts {
		opt(&o)
	}
	bin := binary(t)
	dir := t.TempDir()
	id := "commonops-" + randHex(6)
	group := id

	db := 0
	switch {
	case o.join != nil:
		group, db, o.broker = o.join.Group, o.join.RedisDB, o.join.broker
	case o.inMemory || o.broker == BrokerRabbitMQ:
	default:
		db = leaseRedisDB(t, id)
	}
	writeResources(t, dir, group, db, o)

	sc := &sidecar{
		t:        t,
		bin:      bin,
		logPath:  filepath.Join(dir, "daprd.log"),
		subs:     o.waitForSubs,
		token:    o.apiToken,
		appToken: o.appToken,
	}
	// Free ports are picked, closed and handed to daprd, so a parallel test
	// can take one in between: start again on fresh ports when that happens.
	var ports []int
	for attempt := 1; ; attempt++ {
		ports = freePorts(t, 4)
		if o.httpPort != 0 {
			ports[0] = o.httpPort
		}
		sc.base = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		sc.args = []string{
			"--app-id", id,
			"--dapr-http-port", strconv.Itoa(ports[0]),
			"--dapr-grpc-port", strconv.Itoa(ports[1]),
			"--metrics-port", strconv.Itoa(ports[2]),
			"--dapr-internal-grpc-port", strconv.Itoa(ports[3]),
			"--dapr-listen-addresses", "127.0.0.1",
			"--dapr-internal-grpc-listen-address", "127.0.0.1",
			"--metrics-listen-address", "127.0.0.1",
			"--resources-path", filepath.Join(dir, "resources"),
			"--config", filepath.Join(dir, "config.yaml"),
			"--log-level", "info",
			"--dapr-graceful-shutdown-seconds", "1",
		}
		if appPort > 0 {
			sc.args = append(sc.args, "--app-port", strconv.Itoa(appPort), "--app-channel-address", "127.0.0.1")
		}
		err := sc.start()
		if err == nil {
			break
		}
		if attempt < 3 && sc.portClash() {
			continue
		}
		sc.dumpLog()
		t.Fatalf("daprtest: daprd not ready: %v", err)
	}
	t.Cleanup(func() {
		sc.stop()
		if t.Failed() {
			sc.dumpLog()
		}
	})
	return Sidecar{
		HTTPPort: ports[0],
		GRPCPort: ports[1],
		BaseURL:  sc.base,
		AppID:    id,
		Group:    group,
		RedisDB:  db,
		Stop:     sc.stop,
		Kill:     sc.kill,
		broker:   o.broker,
		Restart: func() {
			t.Helper()
			sc.stop()
			// The ports are the same as before; while daprd was down another
			// test's sidecar or port probe may have held one for a moment.
			for attempt := 0; ; attempt++ {
				err := sc.start()
				if err == nil {
					return
				}
				if attempt < 20 && sc.portClash() {
					time.Sleep(250 * time.Millisecond)
					continue
				}
				sc.dumpLog()
				t.Fatalf("daprtest: daprd not ready after restart: %v", err)
			}
		},
	}
}

type sidecar struct {
	t       testing.TB
	bin     string
	args    []string
	base    string
	subs    bool
	logPath string

	token    string // DAPR_API_TOKEN; "" for none
	appToken string // APP_API_TOKEN; "" for none

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs daprd and waits until it is ready; on failure daprd is stopped.
func (s *sidecar) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	if s.token != "" {
		cmd.Env = append(cmd.Env, "DAPR_API_TOKEN="+s.token)
	}
	if s.appToken != "" {
		cmd.Env = append(cmd.Env, "APP_API_TOKEN="+s.appToken)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done); err != nil {
		s.stop()
		return err
	}
	return nil
}

// portClash reports whether the last start failed on a port taken meanwhile.
func (s *sidecar) portClash() bool {
	b, _ := os.ReadFile(s.logPath)
	return bytes.Contains(b, []byte("address already in use")) || bytes.Contains(b, []byte("could not listen on any endpoint"))
}

func (s *sidecar) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// kill stops daprd at once, with SIGKILL to its process group.
func (s *sidecar) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

func (s *sidecar) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("daprd exited during start-up")
		case <-time.After(50 * time.Millisecond):
		}
		if last = s.ready(client); last == nil {
			return nil
		}
	}
	return fmt.Errorf("not ready after %s: %w", startTimeout, last)
}

// get is GET path of the sidecar, with its API token.
func (s *sidecar) get(client *http.Client, path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		return nil, err
	}
	if s.token != "" {
		req.Header.Set("dapr-api-token", s.token)
	}
	return client.Do(req)
}

func (s *sidecar) ready(client *http.Client) error {
	resp, err := s.get(client, "/v1.0/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("healthz answered %s", resp.Status)
	}
	if !s.subs {
		return nil
	}
	resp, err = s.get(client, "/v1.0/metadata")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var md struct {
		Subscriptions []json.RawMessage `json:"subscriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if len(md.Subscriptions) == 0 {
		return fmt.Errorf("no subscriptions loaded yet")
	}
	return nil
}

func (s *sidecar) dumpLog() {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	s.t.Logf("daprd log (tail):\n%s", b)
}

func binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("COMMONOPS_DAPRD")
	if bin == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("daprtest: home directory: %v", err)
		}
		bin = filepath.Join(home, ".cache", "commonops-tools", "daprd")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("daprtest: daprd not found at %s (%v): build it with .ci/tools.sh, or set COMMONOPS_DAPRD", bin, err)
	}
	return bin
}

func writeResources(t testing.TB, dir, group string, db int, o options) {
	t.Helper()
	res := filepath.Join(dir, "resources")
	if err := os.MkdirAll(res, 0o755); err != nil {
		t.Fatalf("daprtest: %v", err)
	}
	var comp, bcast bytes.Buffer
	switch {
	case o.broker == BrokerRabbitMQ:
		comp.WriteString(rabbitComponent("pubsub", group))
		if o.broadcast {
			bcast.WriteString(rabbitComponent("broadcast", "{uuid}"))
		}
	case o.inMemory:
		comp.WriteString(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
  metadata: []
`)
	default:
		fmt.Fprintf(&comp, `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: %q
  - name: redisDB
    value: "%d"
  - name: consumerID
    value: %q
  - name: redeliverInterval
    value: %q
  - name: processingTimeout
    value: "10s"
`, redisAddr(), db, group, o.redeliver.String())
		if o.broadcast {
			fmt.Fprintf(&bcast, `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broadcast
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: %q
  - name: redisDB
    value: "%d"
  - name: consumerID
    value: "{uuid}"
  - name: redeliverInterval
    value: %q
  - name: processingTimeout
    value: "10s"
`, redisAddr(), db, o.redeliver.String())
		}
	}
	resiliency := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: commonops
spec:
  policies:
    retries:
      inbound:
        policy: constant
        duration: 200ms
        maxRetries: %d
  targets:
    components:
      pubsub:
        inbound:
          retry: inbound
`, o.maxRetries)
	if o.broadcast {
		resiliency += `      broadcast:
        inbound:
          retry: inbound
`
	}
	files := map[string][]byte{"pubsub.yaml": comp.Bytes(), "resiliency.yaml": []byte(resiliency)}
	if bcast.Len() > 0 {
		files["broadcast.yaml"] = bcast.Bytes()
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(res, name), body, 0o644); err != nil {
			t.Fatalf("daprtest: %v", err)
		}
	}
	// The default name resolution (mDNS) announces the app on the network;
	// the kubernetes resolver sends nothing until service invocation, which
	// commonops does not use. Tracing is off unless asked for: nothing to
	// export it to.
	rate := "0"
	if o.tracing {
		rate = "1"
	}
	config := `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: commonops
spec:
  nameResolution:
    component: kubernetes
    configuration:
      template: "127.0.0.1:{{.Port}}"
  tracing:
    samplingRate: "` + rate + `"
`
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(config), 0o644); err != nil {
		t.Fatalf("daprtest: %v", err)
	}
}

// rabbitComponent is a pubsub.rabbitmq component. Its queues (one per topic
// and consumer group) go when their last consumer does, so that tests leave
// none behind (deploy/dapr/rabbitmq/pubsub.yaml keeps them). Tests share
// the broker's exchanges (named after the topics), so a test may receive
// another's events: they name tasks its database does not have, which the
// worker drops.
func rabbitComponent(name, consumerID string) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: pubsub.rabbitmq
  version: v1
  metadata:
  - name: connectionString
    value: %q
  - name: consumerID
    value: %q
  - name: durable
    value: "false"
  - name: deletedWhenUnused
    value: "true"
  - name: requeueInFailure
    value: "true"
  - name: prefetchCount
    value: "64"
`, name, rabbitURL(), consumerID)
}

func rabbitURL() string {
	if u := os.Getenv("COMMONOPS_RABBITMQ_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672"
}

func redisAddr() string {
	if a := os.Getenv("COMMONOPS_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// leaseRedisDB takes one of databases 1..15 for this test (a key with a TTL in
// database 0, renewed while the test runs), flushes it, and gives it back
// flushed at cleanup.
func leaseRedisDB(t testing.TB, owner string) int {
	t.Helper()
	ctx := context.Background()
	addr := redisAddr()
	ctl := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
	t.Cleanup(func() { ctl.Close() })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db <= 15; db++ {
			ok, err := ctl.SetNX(ctx, leaseKey(db), owner, leaseTTL).Result()
			if err != nil {
				t.Fatalf("daprtest: redis at %s: %v", addr, err)
			}
			if !ok {
				continue
			}
			data := redis.NewClient(&redis.Options{Addr: addr, DB: db})
			if err := data.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("daprtest: flush redis db %d: %v", db, err)
			}
			stop := make(chan struct{})
			renewed := make(chan struct{})
			go func() {
				defer close(renewed)
				tick := time.NewTicker(leaseTTL / 3)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						ctl.Expire(ctx, leaseKey(db), leaseTTL)
					}
				}
			}()
			// Registered before the sidecar's cleanup: cleanups run last-in
			// first-out, so this one runs after daprd has stopped.
			t.Cleanup(func() {
				close(stop)
				<-renewed
				data.FlushDB(ctx)
				data.Close()
				ctl.Del(ctx, leaseKey(db))
			})
			return db
		}
		if time.Now().After(deadline) {
			t.Fatalf("daprtest: no free redis database among 1..15 after 2m (leases: keys commonops:daprtest:db:* in db 0)")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func leaseKey(db int) string { return "commonops:daprtest:db:" + strconv.Itoa(db) }

// Free ports are picked below the kernel's ephemeral range (32768-60999 by
// default), where every outgoing connection takes its local port: a port
// picked there and handed to a process could be taken by any test's
// connection before the process listens on it (seen in CI: daprd "could
// not listen on any endpoint" on the HTTP port a replica was given).
const portsFrom, portsTo = 20000, 32000

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("daprtest: no free port among %d tried in %d-%d", tries, portsFrom, portsTo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", portsFrom+mrand.IntN(portsTo-portsFrom)))
		if err != nil {
			continue // taken
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
