package operations

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// This file holds the per-tenant quotas a create is checked against
// (docs/design.md §3, Quotas): tasks created a minute, unfinished tasks of
// the heavy types, and bytes stored. Every figure is read from the store,
// so the quotas hold across replicas; a replica keeps a tenant's figures
// for at most QuotaCacheTTL, and only while they are far from the limit,
// so a tenant well under its quotas costs one query a second per replica,
// not one per create.

// Defaults of the quotas, as `commonops serve` applies them; a Service
// whose Quotas are zero checks none.
const (
	// QuotaCreatesPerMinuteDefault is how many tasks one tenant may create
	// in any minute: 1,000 a second, far above a person's pace but a bound
	// on a runaway client. The heavy and stored-bytes quotas are what keep
	// one tenant from filling the disk.
	QuotaCreatesPerMinuteDefault = 60_000
	// QuotaConcurrentHeavyDefault is how many unfinished (scheduled,
	// pending or processing) tasks of the heavy types one tenant may have.
	QuotaConcurrentHeavyDefault = 20
	// QuotaHeavyTypesDefault are the heavy task types: the built-in bulk
	// processors, whose tasks read or write whole files.
	QuotaHeavyTypesDefault = "import,export"
	// QuotaStoredBytesDefault is how many bytes the files of one tenant's
	// tasks may hold before its creates are refused.
	QuotaStoredBytesDefault int64 = 100 << 30
)

// QuotaCacheTTL is the longest a replica decides on a tenant's figures
// without reading them again.
const QuotaCacheTTL = time.Second

// quotaHeavyRetryAfter is the Retry-After of a create refused for the
// heavy tasks: when one of them ends is not known.
const quotaHeavyRetryAfter = 30 * time.Second

// Quotas bound what one tenant may do and hold. A zero field is no quota.
type Quotas struct {
	// CreatesPerMinute bounds the tasks a tenant creates in any minute;
	// one more is ETOOMANY with the time the oldest leaves the minute.
	CreatesPerMinute int
	// ConcurrentHeavy bounds a tenant's unfinished tasks of HeavyTypes; a
	// create of one more is ETOOMANY.
	ConcurrentHeavy int
	HeavyTypes      []string
	// StoredBytes bounds the bytes a tenant's tasks hold in the object
	// store (Task.StoredBytes): at or over it, creates are ESTORAGEFULL
	// until deletes or retention free some. It is checked at create, so
	// the tasks already running may take a tenant past it.
	StoredBytes int64
}

// ParseHeavyTypes reads a comma list of task types, as the flag
// --quota-heavy-types takes it.
func ParseHeavyTypes(s string) []string {
	var types []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types
}

// quotaCache is one replica's view of each tenant's figures.
type quotaCache struct {
	mu      sync.Mutex
	tenants map[string]*tenantUsage
}

// tenantUsage is a tenant's figures as last read, and what this replica
// created since.
type tenantUsage struct {
	at      time.Time // when created and first were read
	created int
	first   time.Time
	local   int       // tasks this replica created since at
	bytesAt time.Time // when bytes was read
	bytes   int64
}

// quotaCacheMade guards the making of a Service's cache on first use.
var quotaCacheMade sync.Mutex

// cache returns s's quota cache, made on first use.
func (s *Service) cache() *quotaCache {
	quotaCacheMade.Lock()
	defer quotaCacheMade.Unlock()
	if s.quota == nil {
		s.quota = &quotaCache{}
	}
	return s.quota
}

// quotaMaxCached bounds the tenants a replica keeps figures of; past it
// the cache starts over (each tenant then costs one more query).
const quotaMaxCached = 10000

// checkQuotas refuses a create of a task of taskType by tenant that a quota
// forbids: ETOOMANY or ESTORAGEFULL with a message that names the limit,
// the usage and when to retry. A create of a heavy type reads the figures
// every time, since the concurrent quota is what stops a burst of them.
func (s *Service) checkQuotas(ctx context.Context, tenant, taskType string, now time.Time) error {
	q := s.Quotas
	heavy := q.ConcurrentHeavy > 0 && slices.Contains(q.HeavyTypes, taskType)
	if q.CreatesPerMinute <= 0 && q.StoredBytes <= 0 && !heavy {
		return nil
	}
	c := s.cache()
	c.mu.Lock()
	u := c.tenants[tenant]
	var cached tenantUsage
	if u != nil {
		cached = *u
	}
	c.mu.Unlock()

	ask := store.UsageQuery{}
	if q.CreatesPerMinute > 0 && (heavy || !s.trustCreates(cached, now)) {
		ask.CreatedAfter, ask.CreatedUpTo = now.Add(-time.Minute), q.CreatesPerMinute
	}
	if heavy {
		ask.HeavyTypes, ask.HeavyUpTo = q.HeavyTypes, q.ConcurrentHeavy
	}
	if q.StoredBytes > 0 && (heavy || !fresh(cached.bytesAt, now)) {
		ask.StoredBytes = true
	}
	var got store.Usage
	if ask.CreatedUpTo > 0 || ask.HeavyUpTo > 0 || ask.StoredBytes {
		var err error
		if got, err = s.Store.TenantUsage(ctx, tenant, ask); err != nil {
			return fmt.Errorf("quota usage of tenant %s: %w", tenant, err)
		}
		c.mu.Lock()
		if c.tenants == nil || len(c.tenants) >= quotaMaxCached {
			c.tenants = map[string]*tenantUsage{}
		}
		u := c.tenants[tenant]
		if u == nil {
			u = &tenantUsage{}
			c.tenants[tenant] = u
		}
		if ask.CreatedUpTo > 0 {
			u.at, u.created, u.first, u.local = now, got.Created, got.FirstCreated, 0
		}
		if ask.StoredBytes {
			u.bytesAt, u.bytes = now, got.StoredBytes
		}
		cached = *u
		c.mu.Unlock()
	}

	if n := cached.created + cached.local; q.CreatesPerMinute > 0 && n >= q.CreatesPerMinute {
		wait := max(cached.first.Add(time.Minute).Sub(now), time.Second).Round(time.Second)
		return &commonops.Error{Code: commonops.ETOOMANY, RetryAfter: wait, Message: fmt.Sprintf(
			"quota reached: tenant %q created %d tasks in the last minute, the limit is %d a minute; retry in %s",
			tenant, n, q.CreatesPerMinute, wait)}
	}
	if heavy && got.Heavy >= q.ConcurrentHeavy {
		return &commonops.Error{Code: commonops.ETOOMANY, RetryAfter: quotaHeavyRetryAfter, Message: fmt.Sprintf(
			"quota reached: tenant %q has %d unfinished %s tasks (scheduled, pending or processing), the limit is %d; retry once one has ended (in %s, say), or cancel one",
			tenant, got.Heavy, strings.Join(q.HeavyTypes, "/"), q.ConcurrentHeavy, quotaHeavyRetryAfter)}
	}
	if q.StoredBytes > 0 && cached.bytes >= q.StoredBytes {
		return &commonops.Error{Code: commonops.ESTORAGEFULL, Message: fmt.Sprintf(
			"quota reached: the files of tenant %q's tasks hold %d bytes, the limit is %d; delete finished tasks (or wait for retention) to free space",
			tenant, cached.bytes, q.StoredBytes)}
	}
	return nil
}

// trustCreates reports whether u's count of recent creates may decide a
// create without reading it again: it is fresh, this replica made few
// creates since, and it is far from the limit. Near the limit every create
// reads the count, so other replicas' creates are not missed there; far
// from it, the replicas together can make at most their number times the
// local budget (a twentieth of the limit) of creates in a second unseen.
func (s *Service) trustCreates(u tenantUsage, now time.Time) bool {
	limit := s.Quotas.CreatesPerMinute
	if !fresh(u.at, now) {
		return false
	}
	if u.created+u.local >= limit {
		return true // refused: the count only falls as the minute moves on
	}
	return u.local < max(limit/20, 1) && u.created+u.local < limit-max(limit/10, 1)
}

// fresh reports whether figures read at were read within QuotaCacheTTL.
func fresh(at, now time.Time) bool {
	return !at.IsZero() && now.Sub(at) < QuotaCacheTTL && !now.Before(at)
}

// created counts a task this replica created for tenant, until the
// tenant's figures are next read.
func (s *Service) created(tenant string) {
	if s.Quotas.CreatesPerMinute <= 0 {
		return
	}
	c := s.cache()
	c.mu.Lock()
	if u := c.tenants[tenant]; u != nil {
		u.local++
	}
	c.mu.Unlock()
}
