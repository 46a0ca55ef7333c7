package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/store"
)

// newKey stores a new API key of tenant created at now.
func newKey(t *testing.T, s store.Store, tenant string, now time.Time, roles ...auth.Role) *auth.APIKey {
	t.Helper()
	_, id, hash := auth.NewKey()
	k := &auth.APIKey{ID: id, Tenant: tenant, Name: "key " + id, Roles: roles, Hash: hash, CreatedBy: "none:test", CreatedAt: now}
	if err := s.CreateAPIKey(context.Background(), k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return k
}

var apiKeyTests = []test{
	{"RoundTrip", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		_, id, hash := auth.NewKey()
		want := &auth.APIKey{
			ID: id, Tenant: tenantA, Name: "uploader", Roles: []auth.Role{auth.RoleWorker, auth.RoleViewer},
			TaskTypes: []string{"import", "export"}, PlatformAdmin: true, Hash: hash,
			CreatedBy: "apikey:admin1", CreatedAt: at(0), ExpiresAt: ptr(at(3600)),
		}
		if err := s.CreateAPIKey(ctx, want); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		got, err := s.GetAPIKeyByHash(ctx, hash)
		if err != nil {
			t.Fatalf("GetAPIKeyByHash: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GetAPIKeyByHash: got %+v, want %+v", got, want)
		}
		bare := newKey(t, s, tenantA, at(1))
		got, err = s.GetAPIKeyByHash(ctx, bare.Hash)
		if err != nil {
			t.Fatalf("GetAPIKeyByHash: %v", err)
		}
		if got.Roles != nil || got.TaskTypes != nil || got.ExpiresAt != nil || got.RevokedAt != nil || got.LastUsedAt != nil {
			t.Fatalf("key without roles, types or times: got %+v, want nil slices and times", got)
		}
	}},
	{"UnknownHash", func(t *testing.T, s store.Store) {
		_, err := s.GetAPIKeyByHash(context.Background(), auth.HashKey("co_nothing"))
		if code := commonops.ErrorCode(err); code != commonops.ENOTFOUND {
			t.Fatalf("GetAPIKeyByHash of an unknown hash: got %v, want ENOTFOUND", err)
		}
	}},
	{"DuplicateIsConflict", func(t *testing.T, s store.Store) {
		k := newKey(t, s, tenantA, at(0))
		dup := *k
		if err := s.CreateAPIKey(context.Background(), &dup); commonops.ErrorCode(err) != commonops.ECONFLICT {
			t.Fatalf("CreateAPIKey of a taken id: got %v, want ECONFLICT", err)
		}
	}},
	{"ListIsPerTenantNewestFirst", func(t *testing.T, s store.Store) {
		one := newKey(t, s, tenantA, at(0))
		two := newKey(t, s, tenantA, at(1), auth.RoleAdmin)
		newKey(t, s, tenantB, at(2))
		got, err := s.ListAPIKeys(context.Background(), tenantA)
		if err != nil {
			t.Fatalf("ListAPIKeys: %v", err)
		}
		if len(got) != 2 || got[0].ID != two.ID || got[1].ID != one.ID {
			t.Fatalf("ListAPIKeys(%s): got %d keys, want [%s %s]", tenantA, len(got), two.ID, one.ID)
		}
		if none, err := s.ListAPIKeys(context.Background(), "tenant-none"); err != nil || len(none) != 0 {
			t.Fatalf("ListAPIKeys of a tenant without keys: got %v (err %v), want none", none, err)
		}
	}},
	{"Revoke", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		k := newKey(t, s, tenantA, at(0))
		if _, err := s.RevokeAPIKey(ctx, tenantB, k.ID, at(1)); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("RevokeAPIKey by another tenant: got %v, want ENOTFOUND", err)
		}
		got, err := s.RevokeAPIKey(ctx, tenantA, k.ID, at(2))
		if err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(at(2)) {
			t.Fatalf("RevokeAPIKey: got %+v (err %v), want revoked at %v", got, err, at(2))
		}
		again, err := s.RevokeAPIKey(ctx, tenantA, k.ID, at(3))
		if err != nil || again.RevokedAt == nil || !again.RevokedAt.Equal(at(2)) {
			t.Fatalf("RevokeAPIKey again: got %+v (err %v), want the first time %v kept", again, err, at(2))
		}
		stored, err := s.GetAPIKeyByHash(ctx, k.Hash)
		if err != nil || stored.RevokedAt == nil || !stored.RevokedAt.Equal(at(2)) {
			t.Fatalf("GetAPIKeyByHash after revoke: got %+v (err %v), want revoked at %v", stored, err, at(2))
		}
		if _, err := s.RevokeAPIKey(ctx, tenantA, "nosuchkey", at(3)); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Fatalf("RevokeAPIKey of an unknown id: got %v, want ENOTFOUND", err)
		}
	}},
	{"TouchKeepsTheLatest", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		one, two := newKey(t, s, tenantA, at(0)), newKey(t, s, tenantB, at(0))
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{one.ID: at(10), two.ID: at(5), "unknown": at(5)}); err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{one.ID: at(7)}); err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		for k, want := range map[*auth.APIKey]time.Time{one: at(10), two: at(5)} {
			got, err := s.GetAPIKeyByHash(ctx, k.Hash)
			if err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(want) {
				t.Errorf("last used of %s: got %+v (err %v), want %v", k.ID, got, err, want)
			}
		}
		if err := s.TouchAPIKeys(ctx, nil); err != nil {
			t.Fatalf("TouchAPIKeys(nil): %v", err)
		}
	}},
}
