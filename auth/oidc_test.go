package auth

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/pkg/crypto"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/oidctest"
)

// newTestOIDC starts a verifier for p on a clock the test advances.
func newTestOIDC(t testing.TB, p *oidctest.Provider, cfg OIDCConfig) (*OIDC, *testClock) {
	t.Helper()
	clock := &testClock{}
	o, err := newOIDC(t.Context(), cfg, clock.Now)
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	return o, clock
}

// wantUnauthorized fails unless err is an EUNAUTHORIZED *commonops.Error
// whose message starts with want.
func wantUnauthorized(t *testing.T, err error, want string) {
	t.Helper()
	var e *commonops.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want an EUNAUTHORIZED *commonops.Error %q", err, want)
	}
	if e.Code != commonops.EUNAUTHORIZED {
		t.Errorf("got code %q, want %q", e.Code, commonops.EUNAUTHORIZED)
	}
	if !strings.HasPrefix(e.Message, want) {
		t.Errorf("got message %q, want %q", e.Message, want)
	}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	sig, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return sig.Signatures[0].Header.KeyID
}

func TestOIDCVerifyIssuedTokens(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{
		"acme-submitter":  {"tenant": "acme", "roles": []string{"submitter", "viewer", "bogus", "viewer"}, "task_types": "resize,thumbnail"},
		"ops-string":      {"tenant": "ops", "roles": "operator admin,platform-admin"},
		"no-valid-role":   {"tenant": "acme", "roles": []string{"root", "superuser"}},
		"no-roles-claim":  {"tenant": "acme"},
		"roles-not-array": {"tenant": "acme", "roles": map[string]any{"admin": true}},
		"no-tenant":       {"roles": []string{"admin"}},
		"numeric-tenant":  {"tenant": 42, "roles": []string{"admin"}},
	})
	cfg := oidcConfig(p)
	cfg.PlatformAdminRole = "platform-admin"
	o, _ := newTestOIDC(t, p, cfg)

	tests := []struct {
		client  string
		want    *Principal
		wantErr string
	}{
		{client: "acme-submitter", want: &Principal{Tenant: "acme", Subject: "acme-submitter", Mode: ModeOIDC,
			Roles: []Role{RoleSubmitter, RoleViewer}, TaskTypes: []string{"resize", "thumbnail"}}},
		{client: "ops-string", want: &Principal{Tenant: "ops", Subject: "ops-string", Mode: ModeOIDC,
			Roles: []Role{RoleOperator, RoleAdmin}, PlatformAdmin: true}},
		{client: "no-valid-role", want: &Principal{Tenant: "acme", Subject: "no-valid-role", Mode: ModeOIDC}},
		{client: "no-roles-claim", want: &Principal{Tenant: "acme", Subject: "no-roles-claim", Mode: ModeOIDC}},
		{client: "roles-not-array", want: &Principal{Tenant: "acme", Subject: "roles-not-array", Mode: ModeOIDC}},
		{client: "no-tenant", wantErr: `token has no tenant: claim "tenant" is missing or not a string`},
		{client: "numeric-tenant", wantErr: `token has no tenant: claim "tenant" is missing or not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			got, err := o.Verify(t.Context(), p.Token(t, tt.client))
			if tt.wantErr != "" {
				wantUnauthorized(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got principal %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOIDCConfigurableClaims(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{
		"svc": {"org": "acme", "uid": "alice", "groups": []string{"operator"}, "types": []string{"resize"}, "tenant": "ignored"},
	})
	cfg := oidcConfig(p)
	cfg.TenantClaim, cfg.SubjectClaim, cfg.RolesClaim, cfg.TaskTypesClaim = "org", "uid", "groups", "types"
	o, _ := newTestOIDC(t, p, cfg)

	got, err := o.Verify(t.Context(), p.Token(t, "svc"))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &Principal{Tenant: "acme", Subject: "alice", Mode: ModeOIDC, Roles: []Role{RoleOperator}, TaskTypes: []string{"resize"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got principal %+v, want %+v", got, want)
	}
}

func TestOIDCRejects(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{"svc": {"tenant": "acme", "roles": []string{"viewer"}}})
	o, _ := newTestOIDC(t, p, oidcConfig(p))
	opKey := p.SigningKey()

	// spoil signs the OP's valid claims, changed by change, with its key.
	spoil := func(change func(map[string]any)) string {
		c := p.Claims()
		change(c)
		return p.Sign(t, opKey, c)
	}
	// The classic algorithm confusion: the OP's RSA public key, as a
	// verifier would hold it, used as an HMAC secret.
	der, err := x509.MarshalPKIXPublicKey(&opKey.Private().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs256 := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims(p.Claims()))
	hs256.Header["kid"] = opKey.ID()
	hs256Token, err := hs256.SignedString(publicPEM)
	if err != nil {
		t.Fatal(err)
	}
	noneToken, err := gojwt.NewWithClaims(gojwt.SigningMethodNone, gojwt.MapClaims(p.Claims())).
		SignedString(gojwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	unpublished := oidctest.NewKey("not-published", opKey.Private())
	var otherRSA *oidctest.Key // another key's material under the OP's kid
	for _, k := range oidctest.RSAKeys() {
		if !k.Equal(opKey.Private()) {
			otherRSA = oidctest.NewKey(opKey.ID(), k)
		}
	}
	issued := p.Token(t, "svc")
	parts := strings.Split(issued, ".")
	head, payload, sig := parts[0], parts[1], parts[2]

	now := time.Now()
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"missing", "", "missing bearer token"},
		{"not a JWT", "not-a-jwt", "malformed bearer token"},
		{"two parts", "eyJhbGciOiJSUzI1NiJ9.e30", "malformed bearer token"},
		{"oversized", strings.Repeat("a", maxTokenSize+1), "malformed bearer token"},
		{"alg none", noneToken, `token algorithm "none" is not accepted`},
		{"HS256 with the RSA public key", hs256Token, `token algorithm "HS256" is not accepted`},
		{"unknown kid", p.Sign(t, unpublished, p.Claims()), `token signed with unknown key "not-published"`},
		{"bad signature", head + "." + payload + "." + flip(sig), "token signature does not verify"},
		{"another key under the OP's kid", p.Sign(t, otherRSA, p.Claims()), "token signature does not verify"},
		{"payload changed", head + "." + strings.Replace(payload, payload[10:14], "AAAA", 1) + "." + sig, "token signature does not verify"},
		{"expired", spoil(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), "token expired at"},
		{"not yet valid", spoil(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }), "token not valid before"},
		{"issued in the future", spoil(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }), "token issued in the future"},
		{"wrong issuer", spoil(func(c map[string]any) { c["iss"] = "https://evil.example" }), fmt.Sprintf("token issued by %q, want %q", "https://evil.example", p.Issuer())},
		{"no issuer", spoil(func(c map[string]any) { delete(c, "iss") }), fmt.Sprintf("token issued by \"\", want %q", p.Issuer())},
		{"wrong audience", spoil(func(c map[string]any) { c["aud"] = []string{"other", "another"} }), `token is for audience ["other" "another"], want "commonops"`},
		{"no exp", spoil(func(c map[string]any) { delete(c, "exp") }), "token has no exp"},
		{"no subject", spoil(func(c map[string]any) { delete(c, "sub") }), `token has no subject: claim "sub" is missing or not a string`},
		{"no tenant", spoil(func(c map[string]any) { delete(c, "tenant") }), `token has no tenant: claim "tenant" is missing or not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := o.Verify(t.Context(), tt.token)
			if p != nil {
				t.Errorf("got principal %+v, want none", p)
			}
			wantUnauthorized(t, err, tt.want)
		})
	}

	t.Run("no kid", func(t *testing.T) {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: opKey.Private()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		token, err := crypto.Sign(p.Claims(), signer)
		if err != nil {
			t.Fatal(err)
		}
		if kid := kidOf(t, token); kid != "" {
			t.Fatalf("got kid %q, want none", kid)
		}
		if _, err := o.Verify(t.Context(), token); err != nil {
			t.Errorf("got %v, want a token without kid verified against the published keys", err)
		}
	})

	t.Run("within the clock skew", func(t *testing.T) {
		for name, change := range map[string]func(map[string]any){
			"expired 10s ago":     func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() },
			"valid in 10s":        func(c map[string]any) { c["nbf"] = now.Add(10 * time.Second).Unix() },
			"audience among many": func(c map[string]any) { c["aud"] = []string{"other", oidctest.Audience} },
			"audience as string":  func(c map[string]any) { c["aud"] = oidctest.Audience },
		} {
			if _, err := o.Verify(t.Context(), spoil(change)); err != nil {
				t.Errorf("%s: got %v, want it verified", name, err)
			}
		}
	})
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestOIDCKeyRotation(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{"svc": {"tenant": "acme", "roles": []string{"worker"}}})
	o, clock := newTestOIDC(t, p, oidcConfig(p))

	first, second := p.Token(t, "svc"), p.Token(t, "svc")
	if _, err := o.Verify(t.Context(), first); err != nil {
		t.Fatalf("Verify before rotation: %v", err)
	}
	old, current := p.Rotate()
	rotated := p.Token(t, "svc")
	if got := kidOf(t, rotated); got != current.ID() {
		t.Fatalf("OP signs with kid %q after rotation, want %q", got, current.ID())
	}

	// Right after the start-up fetch, the new kid may not refetch yet.
	_, err := o.Verify(t.Context(), rotated)
	wantUnauthorized(t, err, fmt.Sprintf("token signed with unknown key %q", current.ID()))
	if got := p.JWKSFetches(); got != 1 {
		t.Fatalf("got %d JWKS fetches within the refetch interval, want 1", got)
	}

	clock.Advance(jwksRefetchInterval)
	if _, err := o.Verify(t.Context(), rotated); err != nil {
		t.Fatalf("Verify with the new key: %v", err)
	}
	if got := p.JWKSFetches(); got != 2 {
		t.Fatalf("got %d JWKS fetches, want 2: one at start-up, one for the new kid", got)
	}
	// Old-key tokens verify while the old key is published: second was
	// never verified, so this checks its signature against the new set.
	if _, err := o.Verify(t.Context(), second); err != nil {
		t.Fatalf("Verify an old-key token after rotation: %v", err)
	}

	// The OP withdraws the old key; once the key set is stale the verifier
	// fetches it again and the old key stops verifying.
	longOld := p.Claims()
	longOld["exp"] = time.Now().Add(3 * time.Hour).Unix()
	oldToken := p.Sign(t, old, longOld)
	newToken := p.Sign(t, current, longOld)
	p.Withdraw(old)
	clock.Advance(jwksMaxAge + time.Second)
	_, err = o.Verify(t.Context(), oldToken)
	wantUnauthorized(t, err, fmt.Sprintf("token signed with unknown key %q", old.ID()))
	if got := p.JWKSFetches(); got != 3 {
		t.Fatalf("got %d JWKS fetches, want 3: the stale set fetched again", got)
	}
	if _, err := o.Verify(t.Context(), newToken); err != nil {
		t.Fatalf("Verify with the current key after the old one was withdrawn: %v", err)
	}
}

func TestOIDCRefetchRateLimit(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{})
	o, clock := newTestOIDC(t, p, oidcConfig(p))
	// unknownKid signs valid claims with a key the OP does not publish.
	unknownKid := func(i int) string {
		return p.Sign(t, oidctest.NewKey(fmt.Sprintf("unknown-%d", i), oidctest.RSAKeys()[0]), p.Claims())
	}
	// storm sends n unknown-kid tokens at once.
	storm := func(n int) {
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = unknownKid(i)
		}
		var wg sync.WaitGroup
		for _, tok := range tokens {
			wg.Go(func() {
				if _, err := o.Verify(t.Context(), tok); err == nil {
					t.Error("an unknown kid verified")
				}
			})
		}
		wg.Wait()
	}

	if got := p.JWKSFetches(); got != 1 {
		t.Fatalf("got %d JWKS fetches at start-up, want 1", got)
	}
	storm(20)
	if got := p.JWKSFetches(); got != 1 {
		t.Errorf("got %d JWKS fetches after 20 unknown kids within the interval, want 1", got)
	}
	clock.Advance(jwksRefetchInterval)
	storm(50)
	if got := p.JWKSFetches(); got != 2 {
		t.Errorf("got %d JWKS fetches after 50 concurrent unknown kids past the interval, want 2", got)
	}
	clock.Advance(jwksRefetchInterval / 2)
	storm(20)
	if got := p.JWKSFetches(); got != 2 {
		t.Errorf("got %d JWKS fetches half an interval later, want 2", got)
	}
	clock.Advance(jwksRefetchInterval / 2)
	storm(20)
	if got := p.JWKSFetches(); got != 3 {
		t.Errorf("got %d JWKS fetches a full interval later, want 3", got)
	}
}

func TestOIDCCache(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{"svc": {"tenant": "acme", "roles": []string{"viewer", "submitter"}}})
	o, clock := newTestOIDC(t, p, oidcConfig(p))
	key := p.SigningKey()
	token := p.Token(t, "svc")
	shortClaims := p.Claims()
	shortClaims["exp"] = time.Now().Add(40 * time.Second).Unix()
	short := p.Sign(t, key, shortClaims)

	first, err := o.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, err := o.Verify(t.Context(), short); err != nil {
		t.Fatalf("Verify a short-lived token: %v", err)
	}
	first.Roles[0], first.Tenant = RoleAdmin, "evil"

	// The OP withdraws its key and the verifier learns it (an unknown kid
	// refetches the set): only the cache can still answer for token.
	p.Rotate()
	p.Withdraw(key)
	clock.Advance(jwksRefetchInterval)
	_, err = o.Verify(t.Context(), p.Sign(t, oidctest.NewKey("unknown", key.Private()), p.Claims()))
	wantUnauthorized(t, err, `token signed with unknown key "unknown"`)
	if got := p.JWKSFetches(); got != 2 {
		t.Fatalf("got %d JWKS fetches, want 2", got)
	}

	again, err := o.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify a cached token: %v", err)
	}
	want := &Principal{Tenant: "acme", Subject: "svc", Mode: ModeOIDC, Roles: []Role{RoleViewer, RoleSubmitter}}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("got cached principal %+v, want %+v (a caller's change must not reach the cache)", again, want)
	}

	// short is cached until its exp (40s), not the cache's minute.
	clock.Advance(41*time.Second - jwksRefetchInterval)
	_, err = o.Verify(t.Context(), short)
	wantUnauthorized(t, err, fmt.Sprintf("token signed with unknown key %q", key.ID()))
	if _, err := o.Verify(t.Context(), token); err != nil {
		t.Fatalf("Verify a cached token within the minute: %v", err)
	}
	// token is cached for a minute at most.
	clock.Advance(verifiedTTL)
	_, err = o.Verify(t.Context(), token)
	wantUnauthorized(t, err, fmt.Sprintf("token signed with unknown key %q", key.ID()))
}

func TestNewOIDCFails(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{})
	tests := []struct {
		name   string
		change func(*OIDCConfig)
		want   string
	}{
		{"no issuer", func(c *OIDCConfig) { c.Issuer = "" }, "oidc: an issuer is required"},
		{"no audience", func(c *OIDCConfig) { c.Audience = "" }, "oidc: an audience is required"},
		{"issuer differs from discovery", func(c *OIDCConfig) { c.Issuer += "/" }, "oidc discovery: "},
		{"no discovery", func(c *OIDCConfig) { c.Issuer += "/tenant" }, "oidc discovery: GET "},
		{"untrusted TLS", func(c *OIDCConfig) { c.HTTPClient = nil }, "oidc discovery: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := oidcConfig(p)
			tt.change(&cfg)
			_, err := NewOIDC(t.Context(), cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want an error starting %q", err, tt.want)
			}
		})
	}
}

// BenchmarkOIDCVerify measures a verification answered from the cache
// against one that checks the signature and claims (RS256, 2048 bits).
func BenchmarkOIDCVerify(b *testing.B) {
	p := oidctest.Start(b, map[string]map[string]any{"svc": {"tenant": "acme", "roles": []string{"viewer"}}})
	o, _ := newTestOIDC(b, p, oidcConfig(p))
	token := p.Token(b, "svc")
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := o.Verify(b.Context(), token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := o.verify(b.Context(), token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestOIDCVerifyIDToken: an ID token of a log-in verifies with the issuer's
// keys for the client that asked and the nonce it sent; anything else is
// refused, saying why.
func TestOIDCVerifyIDToken(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, nil)
	o, _ := newTestOIDC(t, p, oidcConfig(p))
	idToken := func(change func(map[string]any)) string {
		c := p.Claims()
		c["aud"], c["nonce"] = []string{"console"}, "the-nonce"
		if change != nil {
			change(c)
		}
		return p.Sign(t, p.SigningKey(), c)
	}
	if err := o.VerifyIDToken(t.Context(), idToken(nil), "console", "the-nonce"); err != nil {
		t.Fatalf("got %v, want the ID token verified", err)
	}
	if err := o.VerifyIDToken(t.Context(), idToken(func(c map[string]any) { c["aud"], c["azp"] = []string{"console", oidctest.Audience}, "console" }), "console", "the-nonce"); err != nil {
		t.Fatalf("for the client and the API, authorized for the client: got %v, want it verified", err)
	}
	for name, c := range map[string]struct {
		token, nonce, want string
	}{
		"another nonce":      {idToken(nil), "my-nonce", "ID token nonce does not match"},
		"no nonce":           {idToken(func(c map[string]any) { delete(c, "nonce") }), "the-nonce", "ID token nonce does not match"},
		"no nonce expected":  {idToken(func(c map[string]any) { c["nonce"] = "" }), "", "ID token nonce does not match"},
		"another client":     {idToken(func(c map[string]any) { c["aud"] = []string{"other"} }), "the-nonce", "token is for audience"},
		"another azp":        {idToken(func(c map[string]any) { c["aud"], c["azp"] = []string{"console", "other"}, "other" }), "the-nonce", "ID token for several audiences is authorized for \"other\""},
		"several, no azp":    {idToken(func(c map[string]any) { c["aud"] = []string{"console", "other"} }), "the-nonce", "ID token for several audiences"},
		"expired":            {idToken(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), "the-nonce", "token expired"},
		"another issuer":     {idToken(func(c map[string]any) { c["iss"] = "https://elsewhere.example" }), "the-nonce", "token issued by"},
		"an unpublished key": {p.Sign(t, oidctest.NewKey("unpublished", oidctest.RSAKeys()[0]), p.Claims()), "the-nonce", "token signed with unknown key"},
	} {
		t.Run(name, func(t *testing.T) {
			wantUnauthorized(t, o.VerifyIDToken(t.Context(), c.token, "console", c.nonce), c.want)
		})
	}
}
