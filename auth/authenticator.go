package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
)

// Default header names of the gateway mode.
const (
	GatewaySecretHeaderDefault = "X-Gateway-Secret"
	TenantHeaderDefault        = "X-Tenant-Id"
	UserHeaderDefault          = "X-User-Id"
	RolesHeaderDefault         = "X-User-Roles"
	// PlatformAdminRoleDefault is the role value (of the gateway's roles
	// header or a token's roles claim) that makes a principal a platform
	// admin.
	PlatformAdminRoleDefault = "platform-admin"
)

// Config configures an Authenticator. Mode is required: ModeGateway or
// ModeOIDC (ModeNone needs no Authenticator).
type Config struct {
	Mode Mode
	// GatewaySecret is the secret the gateway sends in
	// GatewaySecretHeader; required in ModeGateway.
	GatewaySecret string
	// Header names of ModeGateway; each defaults to its ...HeaderDefault.
	GatewaySecretHeader, TenantHeader, UserHeader, RolesHeader string
	// PlatformAdminRole is the role value that makes a gateway principal a
	// platform admin. Defaults to PlatformAdminRoleDefault.
	PlatformAdminRole string
	// Keys verifies API keys (Authorization: Bearer co_...); required.
	Keys *Keys
	// OIDC verifies other bearer tokens; required in ModeOIDC.
	OIDC *OIDC
}

// Authenticator establishes the principal of a request in the gateway and
// oidc modes, API keys included.
type Authenticator struct {
	cfg        Config
	secretHash [sha256.Size]byte
}

// NewAuthenticator checks cfg and returns its Authenticator.
func NewAuthenticator(cfg Config) (*Authenticator, error) {
	if cfg.Keys == nil {
		return nil, errors.New("auth: Config.Keys is required")
	}
	switch cfg.Mode {
	case ModeGateway:
		if cfg.GatewaySecret == "" {
			return nil, errors.New("auth: the gateway mode needs a gateway secret")
		}
	case ModeOIDC:
		if cfg.OIDC == nil {
			return nil, errors.New("auth: the oidc mode needs an OIDC verifier")
		}
	default:
		return nil, errors.New("auth: an Authenticator serves the gateway and oidc modes, not " + string(cfg.Mode))
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&cfg.GatewaySecretHeader, GatewaySecretHeaderDefault)
	def(&cfg.TenantHeader, TenantHeaderDefault)
	def(&cfg.UserHeader, UserHeaderDefault)
	def(&cfg.RolesHeader, RolesHeaderDefault)
	def(&cfg.PlatformAdminRole, PlatformAdminRoleDefault)
	return &Authenticator{cfg: cfg, secretHash: sha256.Sum256([]byte(cfg.GatewaySecret))}, nil
}

// Mode is the mode a is configured for.
func (a *Authenticator) Mode() Mode { return a.cfg.Mode }

// TenantHeader is the header that names the tenant (gateway mode) or, for
// a platform admin, the tenant to act in.
func (a *Authenticator) TenantHeader() string { return a.cfg.TenantHeader }

// Forget drops API key id from the cache (it was just revoked).
func (a *Authenticator) Forget(id string) { a.cfg.Keys.Forget(id) }

// Authenticate returns the principal of r, or EUNAUTHORIZED saying what is
// missing or wrong. A bearer co_... is an API key in either mode; otherwise
// the gateway mode trusts the identity headers of a request carrying the
// gateway secret, and the oidc mode verifies the bearer token.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	token, hasBearer, err := bearer(r)
	if err != nil {
		return nil, err
	}
	if hasBearer && IsKey(token) {
		return a.cfg.Keys.Verify(r.Context(), token)
	}
	if a.cfg.Mode == ModeOIDC {
		if !hasBearer {
			return nil, unauthorized(nil, "authentication required: send Authorization: Bearer <token>")
		}
		return a.cfg.OIDC.Verify(r.Context(), token)
	}
	return a.gateway(r)
}

// gateway is the principal the gateway's headers name, on a request with
// the right secret.
func (a *Authenticator) gateway(r *http.Request) (*Principal, error) {
	sent := r.Header.Get(a.cfg.GatewaySecretHeader)
	if sent == "" {
		return nil, unauthorized(nil, "authentication required: the request did not come through the gateway (no %s)", a.cfg.GatewaySecretHeader)
	}
	// Comparing digests in constant time hides the secret's length too.
	got := sha256.Sum256([]byte(sent))
	if subtle.ConstantTimeCompare(got[:], a.secretHash[:]) != 1 {
		return nil, unauthorized(nil, "the gateway secret is wrong")
	}
	tenant := strings.TrimSpace(r.Header.Get(a.cfg.TenantHeader))
	user := strings.TrimSpace(r.Header.Get(a.cfg.UserHeader))
	if tenant == "" || user == "" {
		return nil, unauthorized(nil, "the gateway sent no %s or %s", a.cfg.TenantHeader, a.cfg.UserHeader)
	}
	p := &Principal{Tenant: tenant, Subject: user, Mode: ModeGateway}
	for _, v := range strings.Split(r.Header.Get(a.cfg.RolesHeader), ",") {
		v = strings.TrimSpace(v)
		switch role := Role(v); {
		case v == a.cfg.PlatformAdminRole:
			p.PlatformAdmin = true
		case role.Valid() && !slices.Contains(p.Roles, role):
			p.Roles = append(p.Roles, role)
		}
	}
	return p, nil
}

// bearer returns the token of an Authorization: Bearer header; a header of
// another shape is EUNAUTHORIZED.
func bearer(r *http.Request) (token string, ok bool, err error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, nil
	}
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false, unauthorized(nil, "the Authorization header must be Bearer <token>")
	}
	return token, true, nil
}
