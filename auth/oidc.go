package auth

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/commonops/commonops"
)

// OIDCClockSkewDefault is how far the issuer's clock and ours may disagree
// when exp, nbf and iat are checked.
const OIDCClockSkewDefault = 30 * time.Second

// Limits of the OIDC verifier. None is configurable: they protect the
// service and the issuer, they are not policy.
const (
	// jwksRefetchInterval is the least time between two fetches of the key
	// set: a token with an unknown kid triggers at most one fetch per
	// interval, however many such tokens arrive.
	jwksRefetchInterval = 10 * time.Second
	// jwksMaxAge is how long a fetched key set is trusted before the next
	// verification fetches it again, so that keys the issuer withdraws stop
	// verifying even when no unknown kid shows up.
	jwksMaxAge = time.Hour
	// oidcFetchTimeout bounds one discovery or key-set request.
	oidcFetchTimeout = 10 * time.Second
	// oidcMaxDocument bounds the discovery document and the key set.
	oidcMaxDocument = 1 << 20
	// verifiedTTL is how long a verified token is answered from the cache
	// (never past its exp).
	verifiedTTL = time.Minute
	// verifiedCacheSize bounds the cache of verified tokens.
	verifiedCacheSize = 10_000
	// maxTokenSize rejects oversized bearer tokens before any parsing.
	maxTokenSize = 16 << 10
)

// asymmetricAlgorithms are the only JWS algorithms OIDC accepts, whatever an
// issuer advertises: no "none", no HMAC (a shared secret is not an issuer's
// key, and accepting HS256 invites algorithm confusion with a public key).
var asymmetricAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// OIDCConfig says which issuer OIDC trusts and where a token's claims carry
// the principal.
type OIDCConfig struct {
	// Issuer is the issuer URL: tokens' iss must equal it, and discovery is
	// at Issuer + "/.well-known/openid-configuration". Required.
	Issuer string
	// Audience must be one of a token's aud. Required.
	Audience string
	// TenantClaim names the claim carrying the tenant. Defaults to "tenant".
	TenantClaim string
	// SubjectClaim names the claim carrying the subject. Defaults to "sub".
	SubjectClaim string
	// RolesClaim names the claim carrying the roles: an array of strings or
	// one string separated by spaces or commas. Defaults to "roles".
	RolesClaim string
	// TaskTypesClaim names the claim carrying the task-type scope, in the
	// same forms as the roles. Defaults to "task_types".
	TaskTypesClaim string
	// PlatformAdminRole is a value of the roles claim that makes the
	// principal a platform admin. Defaults to "" (none does).
	PlatformAdminRole string
	// ClockSkew is the leeway on exp, nbf and iat. Defaults to 30s.
	ClockSkew time.Duration
	// HTTPClient fetches the discovery document and the key set. Defaults
	// to a client with a 10s timeout.
	HTTPClient *http.Client
}

// OIDC verifies bearer JWTs issued by one OpenID Connect issuer. It follows
// the issuer's key rotation (an unknown kid refetches the key set, at most
// once per 10s) and caches verified tokens so the hot path does not check the
// same signature twice. It is safe for concurrent use.
type OIDC struct {
	cfg        OIDCConfig
	jwksURL    string
	endpoints  OIDCEndpoints
	algorithms []jose.SignatureAlgorithm
	now        func() time.Time
	verified   *lru.Cache[[sha256.Size]byte, verifiedToken]

	fetch sync.Mutex // held across a key-set fetch, so concurrent misses share it

	mu        sync.Mutex // guards keys, fetchedAt and triedAt
	keys      []jose.JSONWebKey
	fetchedAt time.Time // of the key set in keys
	triedAt   time.Time // of the last fetch, successful or not
}

// verifiedToken is a cache entry: the principal a token verified to, and
// until when that answer stands.
type verifiedToken struct {
	principal *Principal
	until     time.Time
}

// NewOIDC discovers cfg.Issuer and fetches its key set, so a misconfigured
// or unreachable issuer fails at start-up rather than on the first request.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	return newOIDC(ctx, cfg, time.Now)
}

func newOIDC(ctx context.Context, cfg OIDCConfig, now func() time.Time) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("oidc: an issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("oidc: an audience is required")
	}
	cfg.TenantClaim = cmp.Or(cfg.TenantClaim, "tenant")
	cfg.SubjectClaim = cmp.Or(cfg.SubjectClaim, "sub")
	cfg.RolesClaim = cmp.Or(cfg.RolesClaim, "roles")
	cfg.TaskTypesClaim = cmp.Or(cfg.TaskTypesClaim, "task_types")
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = OIDCClockSkewDefault
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: oidcFetchTimeout}
	}
	verified, err := lru.New[[sha256.Size]byte, verifiedToken](verifiedCacheSize)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	o := &OIDC{cfg: cfg, now: now, verified: verified}
	if err := o.discover(ctx); err != nil {
		return nil, err
	}
	keys, err := o.fetchKeys(ctx)
	if err != nil {
		return nil, err
	}
	o.keys, o.fetchedAt, o.triedAt = keys, now(), now()
	return o, nil
}

// discover reads the issuer's discovery document: where its keys are and
// which algorithms it signs with.
func (o *OIDC) discover(ctx context.Context) error {
	url := strings.TrimSuffix(o.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer     string                    `json:"issuer"`
		JWKSURI    string                    `json:"jwks_uri"`
		Algorithms []jose.SignatureAlgorithm `json:"id_token_signing_alg_values_supported"`
		OIDCEndpoints
	}
	if err := o.getJSON(ctx, url, &doc); err != nil {
		return fmt.Errorf("oidc discovery: %w", err)
	}
	if doc.Issuer != o.cfg.Issuer {
		return fmt.Errorf("oidc discovery: %s names issuer %q, want %q", url, doc.Issuer, o.cfg.Issuer)
	}
	if doc.JWKSURI == "" {
		return fmt.Errorf("oidc discovery: %s has no jwks_uri", url)
	}
	o.jwksURL = doc.JWKSURI
	o.endpoints = doc.OIDCEndpoints
	o.algorithms = asymmetricAlgorithms
	if len(doc.Algorithms) > 0 {
		o.algorithms = nil
		for _, alg := range doc.Algorithms {
			if slices.Contains(asymmetricAlgorithms, alg) {
				o.algorithms = append(o.algorithms, alg)
			}
		}
		if len(o.algorithms) == 0 {
			return fmt.Errorf("oidc discovery: issuer signs only with %v, none of them asymmetric", doc.Algorithms)
		}
	}
	return nil
}

// fetchKeys reads the issuer's key set, keeping the public signing keys and
// skipping any key it cannot use (encryption keys, secrets, unknown types).
func (o *OIDC) fetchKeys(ctx context.Context) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := o.getJSON(ctx, o.jwksURL, &set); err != nil {
		return nil, fmt.Errorf("oidc key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil || key.Use == "enc" || !key.IsPublic() {
			continue
		}
		switch key.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, key)
		}
	}
	return keys, nil
}

func (o *OIDC) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, oidcFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, oidcMaxDocument)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// Verify checks a bearer JWT and returns its principal (Mode ModeOIDC), or
// an EUNAUTHORIZED *commonops.Error saying why. A token verified within the
// last minute is answered from a cache keyed by its SHA-256, until its exp.
func (o *OIDC) Verify(ctx context.Context, rawToken string) (*Principal, error) {
	if rawToken == "" {
		return nil, unauthorized(nil, "missing bearer token")
	}
	if len(rawToken) > maxTokenSize {
		return nil, unauthorized(nil, "malformed bearer token: longer than %d bytes", maxTokenSize)
	}
	sum := sha256.Sum256([]byte(rawToken))
	now := o.now()
	if v, ok := o.verified.Get(sum); ok {
		if now.Before(v.until) {
			return clonePrincipal(v.principal), nil
		}
		o.verified.Remove(sum)
	}
	p, exp, err := o.verify(ctx, rawToken)
	if err != nil {
		return nil, err
	}
	o.verified.Add(sum, verifiedToken{principal: p, until: minTime(exp, now.Add(verifiedTTL))})
	return clonePrincipal(p), nil
}

// verify is Verify without the cache: signature, then claims, then the
// principal. It returns the token's exp with the principal.
func (o *OIDC) verify(ctx context.Context, rawToken string) (*Principal, time.Time, error) {
	std, claims, err := o.verifySigned(ctx, rawToken, o.cfg.Audience)
	if err != nil {
		return nil, time.Time{}, err
	}
	p, err := o.principal(claims)
	if err != nil {
		return nil, time.Time{}, err
	}
	return p, std.Expiry.Time(), nil
}

// verifySigned checks a JWT's signature with the issuer's keys and its
// registered claims (issuer, audience, exp, nbf, iat), and returns its
// claims.
func (o *OIDC) verifySigned(ctx context.Context, rawToken, audience string) (jwt.Claims, map[string]any, error) {
	var std jwt.Claims
	tok, err := jwt.ParseSigned(rawToken, o.algorithms)
	if err != nil {
		if algErr, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return std, nil, unauthorized(err, "token algorithm %q is not accepted (want one of %v)", algErr.Got, o.algorithms)
		}
		return std, nil, unauthorized(err, "malformed bearer token")
	}
	header := tok.Headers[0]
	keys, err := o.keysFor(ctx, header.KeyID)
	if err != nil {
		return std, nil, err
	}
	var claims map[string]any
	for _, key := range keys { // never empty: keysFor says why instead
		if key.Algorithm != "" && key.Algorithm != header.Algorithm {
			err = fmt.Errorf("key %q is for %s, token is %s", key.KeyID, key.Algorithm, header.Algorithm)
			continue
		}
		if err = tok.Claims(key.Key, &std, &claims); err == nil {
			break
		}
	}
	if err != nil {
		return std, nil, unauthorized(err, "token signature does not verify")
	}

	now := o.now()
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: o.cfg.Issuer, AnyAudience: []string{audience}, Time: now}, o.cfg.ClockSkew)
	switch {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return std, nil, unauthorized(err, "token issued by %q, want %q", std.Issuer, o.cfg.Issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return std, nil, unauthorized(err, "token is for audience %q, want %q", []string(std.Audience), audience)
	case errors.Is(err, jwt.ErrExpired):
		return std, nil, unauthorized(err, "token expired at %s", std.Expiry.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrNotValidYet):
		return std, nil, unauthorized(err, "token not valid before %s", std.NotBefore.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return std, nil, unauthorized(err, "token issued in the future, at %s", std.IssuedAt.Time().UTC().Format(time.RFC3339))
	case err != nil:
		return std, nil, unauthorized(err, "token claims do not validate")
	case std.Expiry == nil:
		return std, nil, unauthorized(nil, "token has no exp")
	}
	return std, claims, nil
}

// VerifyIDToken checks an ID token the issuer returned to clientID at the
// end of a log-in (OpenID Connect Core 3.1.3.7): signature, issuer, an
// audience naming clientID (and, when it names others too, azp naming
// clientID), the times, and the nonce the log-in sent. An ID token is
// never a bearer token of the API: only the access token is.
func (o *OIDC) VerifyIDToken(ctx context.Context, rawToken, clientID, nonce string) error {
	std, claims, err := o.verifySigned(ctx, rawToken, clientID)
	if err != nil {
		return err
	}
	if azp, _ := claims["azp"].(string); len(std.Audience) > 1 && azp != clientID {
		return unauthorized(nil, "ID token for several audiences is authorized for %q, want %q", azp, clientID)
	}
	got, _ := claims["nonce"].(string)
	if nonce == "" || subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return unauthorized(nil, "ID token nonce does not match the log-in's")
	}
	return nil
}

// OIDCEndpoints are the issuer's endpoints a log-in uses, from its
// discovery document.
type OIDCEndpoints struct {
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	// EndSession is "" when the issuer advertises none.
	EndSession string `json:"end_session_endpoint"`
}

// Endpoints are the issuer's log-in endpoints, as discovered at start.
func (o *OIDC) Endpoints() OIDCEndpoints { return o.endpoints }

// Issuer is the issuer whose tokens o verifies.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// keysFor returns the keys a token with kid may be signed with: the one key
// with that kid, or every key when the token names none. An unknown kid, or
// a key set older than jwksMaxAge, fetches the set again unless a fetch was
// tried within jwksRefetchInterval.
func (o *OIDC) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	keys, stale := o.lookup(kid)
	if len(keys) > 0 && !stale {
		return keys, nil
	}
	o.refresh(ctx)
	keys, _ = o.lookup(kid)
	if len(keys) == 0 {
		return nil, unauthorized(nil, "token signed with unknown key %q", kid)
	}
	return keys, nil
}

func (o *OIDC) lookup(kid string) (keys []jose.JSONWebKey, stale bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	stale = o.now().Sub(o.fetchedAt) > jwksMaxAge
	if kid == "" {
		return o.keys, stale
	}
	for _, key := range o.keys {
		if key.KeyID == kid {
			return []jose.JSONWebKey{key}, stale
		}
	}
	return nil, stale
}

// refresh fetches the key set unless a fetch was tried within
// jwksRefetchInterval. Concurrent callers wait for one fetch. A failed fetch
// keeps the keys we have: the issuer being briefly unreachable must not stop
// tokens signed with known keys from verifying.
func (o *OIDC) refresh(ctx context.Context) {
	o.fetch.Lock()
	defer o.fetch.Unlock()
	o.mu.Lock()
	recent := o.now().Sub(o.triedAt) < jwksRefetchInterval
	if !recent {
		o.triedAt = o.now()
	}
	o.mu.Unlock()
	if recent {
		return
	}
	// The fetch serves every waiting caller: one caller giving up must not
	// fail it for the rest, nor spend the interval on nothing.
	keys, err := o.fetchKeys(context.WithoutCancel(ctx))
	if err != nil {
		return
	}
	o.mu.Lock()
	o.keys, o.fetchedAt = keys, o.now()
	o.mu.Unlock()
}

// principal reads the configured claims of a verified token.
func (o *OIDC) principal(claims map[string]any) (*Principal, error) {
	tenant, _ := claims[o.cfg.TenantClaim].(string)
	if tenant == "" {
		return nil, unauthorized(nil, "token has no tenant: claim %q is missing or not a string", o.cfg.TenantClaim)
	}
	subject, _ := claims[o.cfg.SubjectClaim].(string)
	if subject == "" {
		return nil, unauthorized(nil, "token has no subject: claim %q is missing or not a string", o.cfg.SubjectClaim)
	}
	p := &Principal{Tenant: tenant, Subject: subject, Mode: ModeOIDC}
	for _, v := range stringsClaim(claims[o.cfg.RolesClaim]) {
		if o.cfg.PlatformAdminRole != "" && v == o.cfg.PlatformAdminRole {
			p.PlatformAdmin = true
		}
		if r := Role(v); r.Valid() && !slices.Contains(p.Roles, r) {
			p.Roles = append(p.Roles, r)
		}
	}
	for _, v := range stringsClaim(claims[o.cfg.TaskTypesClaim]) {
		if !slices.Contains(p.TaskTypes, v) {
			p.TaskTypes = append(p.TaskTypes, v)
		}
	}
	return p, nil
}

// stringsClaim reads a claim that is an array of strings or one string of
// values separated by spaces or commas. Anything else reads as no values.
func stringsClaim(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func unauthorized(cause error, format string, args ...any) error {
	e := commonops.Errorf(commonops.EUNAUTHORIZED, format, args...)
	e.Err = cause
	return e
}

// clonePrincipal copies p so that a caller changing its principal cannot
// change the cached one.
func clonePrincipal(p *Principal) *Principal {
	c := *p
	c.Roles = slices.Clone(p.Roles)
	c.TaskTypes = slices.Clone(p.TaskTypes)
	return &c
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
