package auth

// TEMPORARY: a stand-in for auth/oidc.go, which another branch builds with
// exactly this API. Delete this file when that branch is merged.

import (
	"context"
	"net/http"
	"time"

	"github.com/commonops/commonops"
)

// OIDCConfig configures the verification of OpenID Connect bearer tokens.
type OIDCConfig struct {
	Issuer                                                string
	Audience                                              string
	TenantClaim, SubjectClaim, RolesClaim, TaskTypesClaim string
	PlatformAdminRole                                     string
	ClockSkew                                             time.Duration
	HTTPClient                                            *http.Client
}

// OIDC verifies bearer JWTs against an issuer.
type OIDC struct{}

// NewOIDC returns a verifier of cfg's issuer.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) { return &OIDC{}, nil }

// Verify checks a bearer JWT and returns its principal.
func (o *OIDC) Verify(ctx context.Context, rawToken string) (*Principal, error) {
	return nil, commonops.Errorf(commonops.EUNAUTHORIZED, "OIDC is not built yet")
}
