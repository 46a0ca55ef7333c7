package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/commonops/commonops"
)

// Defaults of KeysConfig.
const (
	// KeyCacheTTLDefault is how long a verified key (or an unknown one) is
	// trusted without asking the store again: a key revoked on another
	// replica stops working within it.
	KeyCacheTTLDefault = 30 * time.Second
	// TouchIntervalDefault is how often the last-used times of keys are
	// written: at most once per interval per key, in one batch.
	TouchIntervalDefault = time.Minute
	// keyCacheMax bounds the cache; when full it is emptied.
	keyCacheMax = 100_000
)

// KeyStore is what Keys needs of the store.
type KeyStore interface {
	GetAPIKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error
}

// KeysConfig configures Keys; zero fields take their defaults.
type KeysConfig struct {
	// CacheTTL bounds how long a key is trusted from the cache. Defaults to
	// KeyCacheTTLDefault (30s).
	CacheTTL time.Duration
	// TouchInterval is how often last-used times are written. Defaults to
	// TouchIntervalDefault (1m).
	TouchInterval time.Duration
	// Logger receives the errors of writing last-used times. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Keys verifies API keys. A key's stored record is cached by its hash for
// CacheTTL, so after its first use a key costs no database round trip;
// last-used times are collected and written in batches by the loop Start
// runs.
type Keys struct {
	store    KeyStore
	ttl      time.Duration
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	cache   map[string]cachedKey // by hash
	pending map[string]time.Time // last use not yet written, by key id
	written map[string]time.Time // when a key's last use was last queued

	stop chan struct{}
	done chan struct{}
}

type cachedKey struct {
	key     *APIKey // nil: no such key
	expires time.Time
}

// NewKeys returns a verifier of the keys in store.
func NewKeys(store KeyStore, cfg KeysConfig) *Keys {
	k := &Keys{
		store: store, ttl: cfg.CacheTTL, interval: cfg.TouchInterval, log: cfg.Logger, now: cfg.Now,
		cache: map[string]cachedKey{}, pending: map[string]time.Time{}, written: map[string]time.Time{},
	}
	if k.ttl <= 0 {
		k.ttl = KeyCacheTTLDefault
	}
	if k.interval <= 0 {
		k.interval = TouchIntervalDefault
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	if k.now == nil {
		k.now = time.Now
	}
	return k
}

// unauthorized is the error of a key that does not authenticate.

// Verify returns the principal of key, or EUNAUTHORIZED saying why it is
// refused: malformed, unknown, revoked or expired. The message names the
// key by its id, never by its secret.
func (k *Keys) Verify(ctx context.Context, key string) (*Principal, error) {
	if _, ok := ParseKey(key); !ok {
		return nil, unauthorized(nil, "the bearer token is not a well-formed API key (co_<id>_<secret>)")
	}
	hash, now := HashKey(key), k.now()
	k.mu.Lock()
	c, hit := k.cache[hash]
	k.mu.Unlock()
	if !hit || !now.Before(c.expires) {
		stored, err := k.store.GetAPIKeyByHash(ctx, hash)
		switch commonops.ErrorCode(err) {
		case "":
		case commonops.ENOTFOUND:
			stored = nil
		default:
			return nil, err
		}
		c = cachedKey{key: stored, expires: now.Add(k.ttl)}
		k.mu.Lock()
		if len(k.cache) >= keyCacheMax {
			clear(k.cache)
		}
		k.cache[hash] = c
		k.mu.Unlock()
	}
	if c.key == nil {
		return nil, unauthorized(nil, "unknown API key")
	}
	if why := c.key.Usable(now); why != "" {
		return nil, unauthorized(nil, "%s", why)
	}
	k.used(c.key.ID, now)
	return c.key.Principal(), nil
}

// used queues id's last use at now unless one was queued less than an
// interval ago.
func (k *Keys) used(id string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if last, ok := k.written[id]; ok && now.Sub(last) < k.interval {
		return
	}
	k.written[id] = now
	k.pending[id] = now
}

// Forget drops key id from the cache, so that its revocation takes effect
// at once in this process.
func (k *Keys) Forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for hash, c := range k.cache {
		if c.key != nil && c.key.ID == id {
			delete(k.cache, hash)
		}
	}
}

// Flush writes the queued last-used times.
func (k *Keys) Flush(ctx context.Context) error {
	k.mu.Lock()
	batch := k.pending
	k.pending = map[string]time.Time{}
	for id, at := range k.written {
		if k.now().Sub(at) >= k.interval {
			delete(k.written, id)
		}
	}
	k.mu.Unlock()
	return k.store.TouchAPIKeys(ctx, batch)
}

// Start runs the loop that writes last-used times every TouchInterval; it
// returns at once. Stop ends it.
func (k *Keys) Start(ctx context.Context) {
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(k.done)
		tick := time.NewTicker(k.interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-k.stop:
				k.flush(context.WithoutCancel(ctx))
				return
			case <-ctx.Done():
				return
			}
			k.flush(ctx)
		}
	}()
}

func (k *Keys) flush(ctx context.Context) {
	if err := k.Flush(ctx); err != nil {
		k.log.WarnContext(ctx, "write API key last-used times", "err", err)
	}
}

// Stop writes the last queued times and ends the loop Start began.
func (k *Keys) Stop() {
	if k.stop == nil {
		return
	}
	close(k.stop)
	<-k.done
	k.stop = nil
}
