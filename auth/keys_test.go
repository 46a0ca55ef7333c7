package auth_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
)

// countingStore counts the key lookups and the non-empty last-used writes
// that reach a real store.
type countingStore struct {
	store.Store
	lookups, touches atomic.Int64
}

func (s *countingStore) GetAPIKeyByHash(ctx context.Context, hash string) (*auth.APIKey, error) {
	s.lookups.Add(1)
	return s.Store.GetAPIKeyByHash(ctx, hash)
}

func (s *countingStore) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) > 0 {
		s.touches.Add(1)
	}
	return s.Store.TouchAPIKeys(ctx, used)
}

// TestKeyHotPathSkipsTheStore: 100 requests with one API key cost one
// lookup of the key (then the cache answers) and one batched write of its
// last use, on both stores.
func TestKeyHotPathSkipsTheStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s store.Store) {
		t.Parallel()
		ctx := context.Background()
		key, id, hash := auth.NewKey()
		if err := s.CreateAPIKey(ctx, &auth.APIKey{ID: id, Tenant: "acme", Name: "ci", Roles: []auth.Role{auth.RoleSubmitter},
			Hash: hash, CreatedBy: "test", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		cs := &countingStore{Store: s}
		keys := auth.NewKeys(cs, auth.KeysConfig{})
		keys.Start(ctx)
		authn, err := auth.NewAuthenticator(auth.Config{Mode: auth.ModeGateway, GatewaySecret: "s", Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			r := httptest.NewRequest("POST", "/api/v1/operations/tasks", nil)
			r.Header.Set("Authorization", "Bearer "+key)
			p, err := authn.Authenticate(r)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if p.Actor() != "apikey:"+id {
				t.Fatalf("request %d: got actor %q, want apikey:%s", i, p.Actor(), id)
			}
		}
		if got := cs.lookups.Load(); got != 1 {
			t.Errorf("got %d key lookups over 100 requests, want 1", got)
		}
		if got := cs.touches.Load(); got != 0 {
			t.Errorf("got %d last-used writes before the interval, want 0", got)
		}
		keys.Stop() // writes the queued last use
		if got := cs.touches.Load(); got != 1 {
			t.Errorf("got %d last-used writes after 100 requests and a stop, want 1", got)
		}
		stored, err := s.GetAPIKeyByHash(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		if stored.LastUsedAt == nil {
			t.Error("got no lastUsedAt after the write, want the time of the first use")
		}
	})
}
