// Package auth is who is calling commonops and what they may do: the
// Principal every request runs as, its roles, and the modes that establish
// it (none, gateway, oidc, API keys). httpapi authenticates each request
// into a Principal and checks the route's policy against it; operations
// records the Principal as the actor of the changes it makes.
package auth

import (
	"context"
	"slices"
)

// Role is a set of permissions a principal holds.
type Role string

// Roles. See the README's matrix for what each may do.
const (
	// RoleAdmin manages API keys of its tenant (of every tenant when the
	// principal is a platform admin).
	RoleAdmin Role = "admin"
	// RoleOperator acts on every task of its tenant: read, cancel, retry,
	// delete.
	RoleOperator Role = "operator"
	// RoleSubmitter creates tasks and reads, cancels and retries the tasks
	// it created.
	RoleSubmitter Role = "submitter"
	// RoleViewer reads its tenant's tasks.
	RoleViewer Role = "viewer"
	// RoleWorker calls the worker API for the task types it is scoped to.
	RoleWorker Role = "worker"
)

// Roles lists every role.
var Roles = []Role{RoleAdmin, RoleOperator, RoleSubmitter, RoleViewer, RoleWorker}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Mode is how a deployment authenticates callers (COMMONOPS_AUTH).
type Mode string

// Modes.
const (
	// ModeNone trusts the X-Tenant-Id and X-User-Id headers: anyone who
	// reaches the port is every role of any tenant. The embedded default.
	ModeNone Mode = "none"
	// ModeGateway trusts the identity headers an API gateway sets, only on
	// requests that carry the shared gateway secret.
	ModeGateway Mode = "gateway"
	// ModeOIDC verifies a bearer JWT against an OpenID Connect issuer.
	ModeOIDC Mode = "oidc"
	// ModeAPIKey is a request authenticated by an API key (co_...), in the
	// gateway and oidc modes alike.
	ModeAPIKey Mode = "apikey"
)

// Principal is who a request runs as.
type Principal struct {
	// Tenant is the tenant the principal acts in.
	Tenant string
	// Subject names the caller: a user id, a token's subject, or an API
	// key's id.
	Subject string
	// KeyID is the API key's id when the request carried one.
	KeyID string
	// Mode is how the principal was established.
	Mode Mode
	// Roles are what it may do.
	Roles []Role
	// TaskTypes, when not empty, limits the task types it may create or,
	// as a worker, claim.
	TaskTypes []string
	// PlatformAdmin may act in every tenant (X-Tenant-Id chooses which).
	PlatformAdmin bool
}

// Has reports whether p holds role.
func (p *Principal) Has(role Role) bool { return p != nil && slices.Contains(p.Roles, role) }

// MayType reports whether p's task-type scope admits taskType.
func (p *Principal) MayType(taskType string) bool {
	return p != nil && (len(p.TaskTypes) == 0 || slices.Contains(p.TaskTypes, taskType))
}

// Actor is how the principal is recorded on what it changes: "apikey:ID",
// or "MODE:SUBJECT".
func (p *Principal) Actor() string {
	if p == nil {
		return ""
	}
	if p.KeyID != "" {
		return string(ModeAPIKey) + ":" + p.KeyID
	}
	return string(p.Mode) + ":" + p.Subject
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal WithPrincipal put in ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
