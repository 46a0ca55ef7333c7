package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The tests run a real OpenID Provider, zitadel/oidc's pkg/op over its
// example in-memory storage, in-process on a TLS loopback server. Tokens
// come from its token endpoint (client credentials grant, JWT access
// tokens) and its keys from its discovery and JWKS endpoints. testStorage
// wraps the example storage only where a test needs control: the signing
// keys (to rotate them), the service clients and the claims they get.

// testAudience is the audience the OP puts in every access token it issues.
const testAudience = "commonops"

// testProvider is a running OP.
type testProvider struct {
	issuer  string
	server  *httptest.Server
	storage *testStorage
	// jwksFetches counts GETs of the OP's key set.
	jwksFetches atomic.Int64
}

// startProvider starts an OP signing with one fresh RS256 key and serving
// the given service clients: client ID → the private claims its tokens
// carry. Every client's secret is "secret".
func startProvider(t testing.TB, clients map[string]map[string]any) *testProvider {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	p := &testProvider{issuer: "https://" + srv.Listener.Addr().String(), server: srv}
	key := newTestKey()
	p.storage = &testStorage{
		Storage:   storage.NewStorage(storage.NewUserStore(p.issuer)),
		signing:   key,
		published: []*testKey{key},
		clients:   clients,
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		t.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{CryptoKey: cryptoKey}, p.storage, op.StaticIssuer(p.issuer))
	if err != nil {
		t.Fatalf("start OP: %v", err)
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			p.jwksFetches.Add(1)
		}
		provider.ServeHTTP(w, r)
	})
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return p
}

// token gets an access token for clientID from the OP's token endpoint.
func (p *testProvider) token(t testing.TB, clientID string) string {
	t.Helper()
	cfg := clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: "secret",
		TokenURL:     p.issuer + "/oauth/token",
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, p.server.Client())
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatalf("token for %s: %v", clientID, err)
	}
	return tok.AccessToken
}

// sign signs claims with key through the OP's signer, for tokens its token
// endpoint would not issue (expired, wrong audience, ...).
func (p *testProvider) sign(t testing.TB, key *testKey, claims map[string]any) string {
	t.Helper()
	signer, err := op.SignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := crypto.Sign(claims, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims are valid claims of an access token of this OP, to sign as they
// are or to spoil one at a time.
func (p *testProvider) claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":    p.issuer,
		"aud":    []string{testAudience},
		"sub":    "svc-crafted",
		"iat":    now.Unix(),
		"exp":    now.Add(5 * time.Minute).Unix(),
		"tenant": "acme",
		"roles":  []string{"viewer"},
	}
}

// config is an OIDCConfig for this OP.
func (p *testProvider) config() OIDCConfig {
	return OIDCConfig{Issuer: p.issuer, Audience: testAudience, HTTPClient: p.server.Client()}
}

// testStorage is the example storage with rotatable keys and service
// clients that get JWT access tokens with chosen claims.
type testStorage struct {
	*storage.Storage

	mu        sync.Mutex
	signing   *testKey
	published []*testKey
	clients   map[string]map[string]any
}

// rotate makes a new key the signing key and publishes it beside the old
// ones, which stay published until withdrawn.
func (s *testStorage) rotate() (old, current *testKey) {
	key := newTestKey()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, s.signing = s.signing, key
	s.published = append(s.published, key)
	return old, key
}

// withdraw stops publishing key.
func (s *testStorage) withdraw(key *testKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = slices.DeleteFunc(s.published, func(k *testKey) bool { return k == key })
}

func (s *testStorage) signingKey() *testKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing
}

func (s *testStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return s.signingKey(), nil
}

func (s *testStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *testStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]op.Key, 0, len(s.published))
	for _, k := range s.published {
		keys = append(keys, publicKey{k})
	}
	return keys, nil
}

func (s *testStorage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	if _, ok := s.clients[clientID]; !ok || clientSecret != "secret" {
		return nil, oidc.ErrInvalidClient()
	}
	// The example's service user, but with JWT access tokens and our ID.
	base, err := s.Storage.ClientCredentials(ctx, "sid1", "verysecret")
	if err != nil {
		return nil, err
	}
	return jwtClient{Client: base, id: clientID}, nil
}

func (s *testStorage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &oidc.JWTTokenRequest{Subject: clientID, Audience: []string{testAudience}, Scopes: scopes}, nil
}

func (s *testStorage) GetPrivateClaimsFromScopes(_ context.Context, _, clientID string, _ []string) (map[string]any, error) {
	return s.clients[clientID], nil
}

type jwtClient struct {
	op.Client
	id string
}

func (c jwtClient) GetID() string                       { return c.id }
func (c jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// testKey is an RS256 signing key of the OP.
type testKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *testKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *testKey) Key() any                                    { return k.key }
func (k *testKey) ID() string                                  { return k.id }

// publicKey is how the OP publishes a testKey.
type publicKey struct{ k *testKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

// rsaKeys are generated once: RSA key generation is slow under -race, and
// a fresh kid is enough to make a key new to the verifier.
var rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

var nextKey atomic.Int64

func newTestKey() *testKey {
	keys := rsaKeys()
	return &testKey{id: uuid.NewString(), key: keys[int(nextKey.Add(1))%len(keys)]}
}

// testClock is the real time plus an offset the test advances, so the
// verifier's clock never lags the OP's.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
