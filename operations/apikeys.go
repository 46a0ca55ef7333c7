package operations

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
)

// Bounds of an API key's fields.
const (
	MaxKeyNameLen   = 100
	MaxKeyTaskTypes = 50
)

// KeyRequest is a request for a new API key.
type KeyRequest struct {
	Tenant        string
	Name          string
	Roles         []auth.Role
	TaskTypes     []string
	ExpiresAt     *time.Time
	PlatformAdmin bool
	// CreatedBy is the actor creating the key.
	CreatedBy string
}

// NewKey is a created API key: the key itself, shown only here, and what
// the store keeps of it.
type NewKey struct {
	Key string `json:"key"`
	*auth.APIKey
}

// MaxKeyTenantLen bounds the tenant a key is made for, as the identity
// headers are bounded.
const MaxKeyTenantLen = 128

// CreateAPIKey validates r and stores a new key. EINVALID for a missing or
// too long name, no roles or an unknown one, a bad task type, or an expiry
// in the past.
func (s *Service) CreateAPIKey(ctx context.Context, r KeyRequest) (*NewKey, error) {
	var fe fieldErrors
	if r.Name == "" || len(r.Name) > MaxKeyNameLen || !commonops.Printable(r.Name) {
		fe.add("name", "must be 1 to %d printable characters", MaxKeyNameLen)
	}
	if len(r.Roles) == 0 {
		fe.add("roles", "must name at least one of admin, operator, submitter, viewer, worker")
	}
	for i, role := range r.Roles {
		if !role.Valid() {
			fe.add(fmt.Sprintf("roles[%d]", i), "must be one of admin, operator, submitter, viewer, worker")
		}
	}
	if len(r.TaskTypes) > MaxKeyTaskTypes {
		fe.add("taskTypes", "must name at most %d task types", MaxKeyTaskTypes)
	}
	for i, tt := range r.TaskTypes {
		if tt == "" || len(tt) > commonops.MaxNameLen || !commonops.Printable(tt) {
			fe.add(fmt.Sprintf("taskTypes[%d]", i), "must be 1 to %d printable characters", commonops.MaxNameLen)
		}
	}
	now := s.now()
	if r.ExpiresAt != nil && !r.ExpiresAt.After(now) {
		fe.add("expiresAt", "must be in the future")
	}
	switch {
	case r.Tenant == "":
		fe.add("tenant", "is required")
	case len(r.Tenant) > MaxKeyTenantLen || !commonops.Printable(r.Tenant):
		fe.add("tenant", "must be 1 to %d printable characters", MaxKeyTenantLen)
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	key, id, hash := auth.NewKey()
	k := &auth.APIKey{
		ID: id, Tenant: r.Tenant, Name: r.Name, Roles: slices.Compact(slices.Sorted(slices.Values(r.Roles))),
		TaskTypes: r.TaskTypes, PlatformAdmin: r.PlatformAdmin, Hash: hash, CreatedBy: r.CreatedBy, CreatedAt: now,
	}
	if r.ExpiresAt != nil {
		exp := r.ExpiresAt.UTC().Truncate(time.Microsecond)
		k.ExpiresAt = &exp
	}
	if err := s.Store.CreateAPIKey(ctx, k); err != nil {
		return nil, fmt.Errorf("create API key: %w", err)
	}
	return &NewKey{Key: key, APIKey: k}, nil
}

// ListAPIKeys returns tenant's keys, newest first, without their secrets
// (which are not stored).
func (s *Service) ListAPIKeys(ctx context.Context, tenant string) ([]*auth.APIKey, error) {
	return s.Store.ListAPIKeys(ctx, tenant)
}

// RevokeAPIKey revokes tenant's key id; ENOTFOUND when tenant has no such
// key.
func (s *Service) RevokeAPIKey(ctx context.Context, tenant, id string) (*auth.APIKey, error) {
	return s.Store.RevokeAPIKey(ctx, tenant, id, s.now())
}
