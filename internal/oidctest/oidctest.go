// Package oidctest runs a real OpenID Provider for tests: zitadel/oidc's
// pkg/op over its example in-memory storage, in-process on a TLS loopback
// server. Tokens come from its token endpoint (client credentials grant,
// JWT access tokens) and its keys from its discovery and JWKS endpoints.
// The storage is wrapped only where a test needs control: the signing keys
// (to rotate them), the service clients and the claims they get, and, for
// a browser's log-in (authorization code flow with PKCE), one web client,
// the people who may log in and the claims their access tokens carry. A
// small log-in page of our own stands in for the example's, whose router
// is not exported.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"html/template"
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

// Audience is the audience the OP puts in every access token it issues.
const Audience = "commonops"

// ClientSecret is the secret of every service client of a Provider.
const ClientSecret = "secret"

// Provider is a running OP. It stops when the test that started it ends.
type Provider struct {
	issuer   string
	server   *httptest.Server
	storage  *keyStorage
	provider *op.Provider
	// jwksFetches counts GETs of the OP's key set.
	jwksFetches atomic.Int64
}

// Start starts an OP signing with one fresh RS256 key and serving the
// given service clients: client ID → the private claims its tokens carry
// (tenant, roles, task_types, ...); the subject of a client's tokens is its
// ID.
func Start(t testing.TB, clients map[string]map[string]any) *Provider {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	p := &Provider{issuer: "https://" + srv.Listener.Addr().String(), server: srv}
	key := newKey()
	people := &userStore{users: map[string]*storage.User{}}
	p.storage = &keyStorage{
		Storage:   storage.NewStorageWithClients(people, map[string]*storage.Client{}),
		signing:   key,
		published: []*Key{key},
		clients:   clients,
		people:    people,
		claims:    map[string]map[string]any{},
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		t.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{CryptoKey: cryptoKey, CodeMethodS256: true}, p.storage, op.StaticIssuer(p.issuer))
	if err != nil {
		t.Fatalf("start OP: %v", err)
	}
	p.provider = provider
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+loginPath, p.loginPage)
	mux.HandleFunc("POST "+loginPath, p.login)
	mux.Handle("/", provider)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			p.jwksFetches.Add(1)
		}
		mux.ServeHTTP(w, r)
	})
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return p
}

// Issuer is the OP's issuer URL (https, loopback).
func (p *Provider) Issuer() string { return p.issuer }

// HTTPClient is a client that trusts the OP's TLS certificate, for a
// verifier to fetch its discovery document and keys with.
func (p *Provider) HTTPClient() *http.Client { return p.server.Client() }

// JWKSFetches is how many times the OP's key set has been fetched.
func (p *Provider) JWKSFetches() int64 { return p.jwksFetches.Load() }

// Token gets an access token for clientID from the OP's token endpoint.
func (p *Provider) Token(t testing.TB, clientID string) string {
	t.Helper()
	cfg := clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: ClientSecret,
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

// Sign signs claims with key through the OP's signer, for tokens its token
// endpoint would not issue (expired, wrong audience, ...).
func (p *Provider) Sign(t testing.TB, key *Key, claims map[string]any) string {
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

// Claims are valid claims of an access token of this OP (subject
// svc-crafted, tenant acme, role viewer, five minutes to live), to sign as
// they are or to spoil one at a time.
func (p *Provider) Claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":    p.issuer,
		"aud":    []string{Audience},
		"sub":    "svc-crafted",
		"iat":    now.Unix(),
		"exp":    now.Add(5 * time.Minute).Unix(),
		"tenant": "acme",
		"roles":  []string{"viewer"},
	}
}

// SigningKey is the key the OP signs new tokens with.
func (p *Provider) SigningKey() *Key {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	return p.storage.signing
}

// Rotate makes a new key the signing key and publishes it beside the old
// ones, which stay published until withdrawn.
func (p *Provider) Rotate() (old, current *Key) {
	key := newKey()
	s := p.storage
	s.mu.Lock()
	defer s.mu.Unlock()
	old, s.signing = s.signing, key
	s.published = append(s.published, key)
	return old, key
}

// Withdraw stops publishing key.
func (p *Provider) Withdraw(key *Key) {
	s := p.storage
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = slices.DeleteFunc(s.published, func(k *Key) bool { return k == key })
}

// Key is an RS256 signing key; the OP publishes its public half under its
// ID while it is published.
type Key struct {
	kid     string
	private *rsa.PrivateKey
}

// NewKey is a key with the given kid and private key, for tokens signed
// by keys the OP does not publish, or by another key under a published kid.
func NewKey(kid string, private *rsa.PrivateKey) *Key { return &Key{kid: kid, private: private} }

// ID is the key's kid.
func (k *Key) ID() string { return k.kid }

// Private is the key's RSA private key.
func (k *Key) Private() *rsa.PrivateKey { return k.private }

// SignatureAlgorithm is RS256 (op.SigningKey).
func (k *Key) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }

// Key is the private key (op.SigningKey).
func (k *Key) Key() any { return k.private }

// RSAKeys are the RSA keys every Key is made from, generated once per test
// binary: RSA key generation is slow under -race, and a fresh kid is
// enough to make a key new to a verifier.
var RSAKeys = sync.OnceValue(func() []*rsa.PrivateKey {
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

func newKey() *Key {
	keys := RSAKeys()
	return &Key{kid: uuid.NewString(), private: keys[int(nextKey.Add(1))%len(keys)]}
}

// keyStorage is the example storage with rotatable keys, service clients
// that get JWT access tokens with chosen claims, and one web client whose
// people get the same.
type keyStorage struct {
	*storage.Storage

	people *userStore

	mu        sync.Mutex
	signing   *Key
	published []*Key
	clients   map[string]map[string]any
	claims    map[string]map[string]any // of each person, by user ID
	web       *storage.Client           // nil until WebClient
	webID     string
	webSecret string
}

func (s *keyStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing, nil
}

func (s *keyStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *keyStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]op.Key, 0, len(s.published))
	for _, k := range s.published {
		keys = append(keys, publicKey{k})
	}
	return keys, nil
}

func (s *keyStorage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	if _, ok := s.clients[clientID]; !ok || clientSecret != ClientSecret {
		return nil, oidc.ErrInvalidClient()
	}
	// The example's service user, but with JWT access tokens and our ID.
	base, err := s.Storage.ClientCredentials(ctx, "sid1", "verysecret")
	if err != nil {
		return nil, err
	}
	return jwtClient{Client: base, id: clientID}, nil
}

func (s *keyStorage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &oidc.JWTTokenRequest{Subject: clientID, Audience: []string{Audience}, Scopes: scopes}, nil
}

// GetPrivateClaimsFromScopes gives a person's access tokens their claims,
// and a service client's its own.
func (s *keyStorage) GetPrivateClaimsFromScopes(_ context.Context, userID, clientID string, _ []string) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if claims, ok := s.claims[userID]; ok {
		return claims, nil
	}
	return s.clients[clientID], nil
}

type jwtClient struct {
	op.Client
	id string
}

func (c jwtClient) GetID() string                       { return c.id }
func (c jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// publicKey is how the OP publishes a Key.
type publicKey struct{ k *Key }

func (p publicKey) ID() string                         { return p.k.kid }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.private.PublicKey }

// loginPath is the OP's log-in page, where the example clients' LoginURL
// sends the browser with the auth request's ID.
const loginPath = "/login/username"

// WebClient registers a confidential web client (authorization code flow,
// PKCE with S256, client_secret_basic) that may send the browser back to
// redirectURI only. Its access tokens are JWTs for Audience carrying the
// claims of the person who logged in (User); its ID tokens are for id and
// Audience, authorized for id (azp). Registering id again replaces it, so
// a test can register its service's callback once the service listens.
func (p *Provider) WebClient(id, secret, redirectURI string) {
	s := p.storage
	s.mu.Lock()
	defer s.mu.Unlock()
	s.web = storage.WebClient(id, secret, redirectURI)
	s.webID, s.webSecret = id, secret
}

// User adds a person who may log in at the OP's log-in page with username
// and password. Their tokens' subject is username, and their access tokens
// carry claims (tenant, roles, ...).
func (p *Provider) User(username, password string, claims map[string]any) {
	p.storage.people.add(&storage.User{ID: username, Username: username, Password: password, FirstName: username, EmailVerified: true})
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	p.storage.claims[username] = claims
}

// loginTemplate is the OP's log-in page: the form the example's login
// handler shows, with labels a test can find.
var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test OP · Log in</title></head>
<body style="font-family: sans-serif; max-width: 24rem; margin: 3rem auto">
<h1>Test OpenID Provider</h1>
<form method="post" action="` + loginPath + `">
<input type="hidden" name="id" value="{{.ID}}">
<p><label for="username">Username</label><br><input id="username" name="username" autocomplete="username" autofocus></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password"></p>
{{if .Error}}<p id="op-error" style="color: #b00">{{.Error}}</p>{{end}}
<button type="submit" id="op-login">Log in</button>
</form>
</body></html>`))

// loginPage shows the log-in form of the auth request in the query.
func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	p.renderLogin(w, r.URL.Query().Get("authRequestID"), "")
}

func (p *Provider) renderLogin(w http.ResponseWriter, id, errMsg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	loginTemplate.Execute(w, struct{ ID, Error string }{id, errMsg})
}

// login checks the person's password against the auth request (the
// example storage marks it done) and sends the browser on to the OP's
// callback, which redirects to the client with a code.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	if err := p.storage.CheckUsernamePassword(r.PostFormValue("username"), r.PostFormValue("password"), id); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		p.renderLogin(w, id, err.Error())
		return
	}
	callback := op.AuthCallbackURL(p.provider)(op.ContextWithIssuer(r.Context(), p.issuer), id)
	http.Redirect(w, r, callback, http.StatusFound)
}

// userStore holds the people of User (storage.UserStore).
type userStore struct {
	mu    sync.Mutex
	users map[string]*storage.User
}

func (u *userStore) add(user *storage.User) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.users[user.ID] = user
}

func (u *userStore) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.users[id]
}

func (u *userStore) GetUserByUsername(username string) *storage.User {
	return u.GetUserByID(username) // a user's ID is their username
}

func (u *userStore) ExampleClientID() string { return storage.ServiceUserID }

func (s *keyStorage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.web == nil || clientID != s.webID {
		return nil, oidc.ErrInvalidClient()
	}
	return jwtClient{Client: s.web, id: clientID}, nil
}

func (s *keyStorage) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.web == nil || clientID != s.webID || clientSecret != s.webSecret {
		return oidc.ErrInvalidClient()
	}
	return nil
}

func (s *keyStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	req, err := s.Storage.AuthRequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return forAPI{req}, nil
}

func (s *keyStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	req, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	return forAPI{req}, nil
}

// CreateAccessToken hands the example storage its own auth request, which
// it reads the client from.
func (s *keyStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	if f, ok := req.(forAPI); ok {
		req = f.AuthRequest
	}
	return s.Storage.CreateAccessToken(ctx, req)
}

// forAPI is a person's auth request whose tokens are also for Audience,
// as an OP configured for an API issues them.
type forAPI struct{ op.AuthRequest }

func (f forAPI) GetAudience() []string { return append(f.AuthRequest.GetAudience(), Audience) }
