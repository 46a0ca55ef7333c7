package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/internal/oidctest"
)

// benchCreateClients is how many clients create at once.
const benchCreateClients = 16

// BenchmarkAuthCreate measures HTTP creates per second from 16 concurrent
// clients on PostgreSQL (a fresh schema each) with auth none, with an OIDC
// JWT from a real OP (verified once, then from the cache) and with an API
// key (looked up once, then from the cache), rate limits and quotas off.
// Run the modes side by side and alternate them with -count:
//
//	go test -run '^$' -bench BenchmarkAuthCreate -benchtime 3000x -count 3 ./app/
func BenchmarkAuthCreate(b *testing.B) {
	base := func(b *testing.B) app.Config {
		return app.Config{DatabaseURL: databaseURL(b, "postgres"), RateLimit: -1, TenantRateLimit: -1,
			QuotaCreatesPerMinute: -1, QuotaConcurrentHeavy: -1}
	}
	b.Run("none", func(b *testing.B) {
		_, url := startAPI(b, base(b))
		benchCreates(b, url, func(r *http.Request) { r.Header.Set("X-Tenant-Id", "bench") })
	})
	b.Run("oidc", func(b *testing.B) {
		p := oidctest.Start(b, map[string]map[string]any{"bench": {"tenant": "bench", "roles": []string{"submitter"}}})
		cfg := base(b)
		cfg.Auth, cfg.OIDCIssuer, cfg.OIDCAudience, cfg.OIDCHTTPClient = "oidc", p.Issuer(), oidctest.Audience, p.HTTPClient()
		_, url := startAPI(b, cfg)
		token := p.Token(b, "bench")
		benchCreates(b, url, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) })
	})
	b.Run("apikey", func(b *testing.B) {
		cfg := base(b)
		cfg.Auth, cfg.GatewaySecret = "gateway", "bench-gateway-secret"
		key := storeKey(b, cfg, auth.RoleSubmitter)
		_, url := startAPI(b, cfg)
		benchCreates(b, url, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) })
	})
}

// storeKey stores a new API key of tenant bench with role in cfg's
// database, as `commonops apikey create` does, and returns it.
func storeKey(t testing.TB, cfg app.Config, role auth.Role) string {
	t.Helper()
	ctx := context.Background()
	st, _, err := app.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, id, hash := auth.NewKey()
	if err := st.CreateAPIKey(ctx, &auth.APIKey{ID: id, Tenant: "bench", Name: "bench", Roles: []auth.Role{role},
		Hash: hash, CreatedBy: "bench", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return key
}

// benchCreates POSTs b.N creates to url from benchCreateClients clients,
// each request signed by sign, and reports creates/s.
func benchCreates(b *testing.B, url string, sign func(*http.Request)) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchCreateClients}}
	defer client.CloseIdleConnections()
	body := []byte(`{"taskType":"bench","entityType":"x"}`)
	create := func() error {
		req, err := http.NewRequest("POST", url+"/api/v1/operations/tasks", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		sign(req)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return &createError{resp.StatusCode, string(b)}
		}
		return nil
	}
	// One create warms the caches (the token, the key) and the pool.
	if err := create(); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism((benchCreateClients + 1) / 2) // × GOMAXPROCS (2 here)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
}

type createError struct {
	status int
	body   string
}

func (e *createError) Error() string {
	return "create: got " + http.StatusText(e.status) + " " + e.body + ", want 201"
}
