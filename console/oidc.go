package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// The log-in with an OpenID Provider is the authorization code flow with
// PKCE (S256), state and nonce. Nothing is kept on the server: what the
// callback must check (state, nonce, PKCE verifier, where to go next)
// travels in a short-lived cookie of the browser that began the log-in,
// and the access token the provider issues becomes the console's
// credential, sent to the API as a bearer token like an API key.
const (
	// flowCookie holds the log-in in progress: on https as
	// "__Host-"+flowCookie (see flowCookieOf), else on the callback's path.
	flowCookie = "commonops_console_oidc"
	// flowTTL is how long a log-in may take at the provider.
	flowTTL = 10 * time.Minute
	// exchangeTimeout bounds the code exchange and the ID token's checks.
	exchangeTimeout = 10 * time.Second
	// maxTokenCookie is the largest access token the console keeps: a
	// browser keeps cookies of about 4 KiB, name and attributes included.
	maxTokenCookie = 3800
)

// OIDC configures the log-in with an OpenID Provider: its client for the
// console, registered at the provider with the redirect URI
// PublicURL + "/console/oidc/callback".
type OIDC struct {
	// Issuer is the provider's issuer URL; the log-in page names its host.
	// Required.
	Issuer string
	// ClientID and ClientSecret are the console's client at the provider;
	// the secret is "" for a public client (PKCE alone). ClientID is
	// required.
	ClientID, ClientSecret string
	// AuthURL and TokenURL are the provider's authorization and token
	// endpoints (from its discovery document). Required.
	AuthURL, TokenURL string
	// Scopes are asked for at log-in. Defaults to openid.
	Scopes []string
	// Verifier checks the ID token of a log-in. Required.
	Verifier IDTokenVerifier
	// HTTPClient makes the code exchange. Defaults to a client with a 10s
	// timeout.
	HTTPClient *http.Client
}

// IDTokenVerifier checks an ID token issued to clientID for the log-in
// that sent nonce (auth.OIDC is one).
type IDTokenVerifier interface {
	VerifyIDToken(ctx context.Context, rawToken, clientID, nonce string) error
}

// oidcLogin is the console's OIDC client.
type oidcLogin struct {
	cfg      OIDC
	oauth    oauth2.Config
	provider string // the issuer's host, as the log-in page names it
}

func newOIDCLogin(cfg OIDC, publicURL string) *oidcLogin {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.AuthURL == "" || cfg.TokenURL == "" || cfg.Verifier == nil {
		panic("console: OIDC needs Issuer, ClientID, AuthURL, TokenURL and Verifier")
	}
	if publicURL == "" {
		panic("console: OIDC needs Config.PublicURL, the base of its redirect URI")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"openid"}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: exchangeTimeout}
	}
	provider := cfg.Issuer
	if u, err := url.Parse(cfg.Issuer); err == nil && u.Host != "" {
		provider = u.Host
	}
	return &oidcLogin{cfg: cfg, provider: provider, oauth: oauth2.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Scopes: cfg.Scopes,
		Endpoint:    oauth2.Endpoint{AuthURL: cfg.AuthURL, TokenURL: cfg.TokenURL},
		RedirectURL: CallbackURL(publicURL),
	}}
}

// CallbackURL is the redirect URI to register at the provider for a
// service reached at publicURL.
func CallbackURL(publicURL string) string {
	return strings.TrimSuffix(publicURL, "/") + Prefix + "oidc/callback"
}

// flow is a log-in in progress, kept in the flow cookie. It needs no
// signature: state is compared with what the provider sends back, and on
// https the cookie is a "__Host-" one, which only this origin can set (not
// a sibling subdomain, not a plain-http page), so a flow another site began
// cannot be finished in this browser (log-in CSRF); a request with two flow
// cookies is refused. The verifier and nonce are secrets of this browser,
// which an intercepted code cannot be redeemed or replayed without. Over
// plain http nothing keeps a network attacker from setting cookies: run
// the console on https.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"next"`
}

// oidcStart begins a log-in: it keeps the flow in its cookie and sends the
// browser to the provider.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	f := flow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(), Next: safeNext(r.URL.Query().Get("next"))}
	raw, _ := json.Marshal(f)
	name, path := c.flowCookieOf(r)
	http.SetCookie(w, c.oidcCookie(r, name, base64.RawURLEncoding.EncodeToString(raw), path, flowTTL))
	to := c.oidc.oauth.AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oauth2.SetAuthURLParam("nonce", f.Nonce))
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// oidcCallback finishes a log-in: it checks the state, redeems the code
// with the PKCE verifier, checks the ID token's nonce and that the API
// accepts the access token, which it then keeps in the console's cookie.
// Any failure shows the log-in page saying why, and keeps no credential.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, path := c.flowCookieOf(r)
	f, flowErr := readFlow(r, name)
	// The flow is good for one callback, whatever its outcome.
	http.SetCookie(w, c.oidcCookie(r, name, "", path, -1))
	next := Prefix + "tasks"
	if flowErr == nil {
		next = f.Next
	}
	refuse := func(status int, msg string) {
		c.render(w, r, status, "login", page{Title: "Log in", Data: c.loginData(next, "", msg)})
	}
	if flowErr != nil {
		refuse(http.StatusBadRequest, "this log-in was not begun here, or took longer than "+flowTTL.String()+": log in again")
		return
	}
	// The state is checked first, on errors too: the text of an error
	// shown on this page must come from the provider this log-in went to.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		refuse(http.StatusBadRequest, "the identity provider's answer does not match this log-in (state): log in again")
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "the identity provider refused the log-in (" + e + ")"
		if d := q.Get("error_description"); d != "" {
			msg += ": " + d
		}
		refuse(http.StatusUnauthorized, msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), exchangeTimeout)
	defer cancel()
	tok, err := c.oidc.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.oidc.cfg.HTTPClient), q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		c.log.Warn("console OIDC code exchange", "error", err)
		refuse(http.StatusBadGateway, "the identity provider did not complete the log-in: "+exchangeReason(err))
		return
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		refuse(http.StatusBadGateway, "the identity provider returned no ID token (is openid among the scopes?)")
		return
	}
	if err := c.oidc.cfg.Verifier.VerifyIDToken(ctx, idToken, c.oidc.cfg.ClientID, f.Nonce); err != nil {
		refuse(http.StatusUnauthorized, "the identity provider's ID token was not accepted: "+err.Error())
		return
	}
	if len(tok.AccessToken) > maxTokenCookie {
		refuse(http.StatusBadGateway, "the identity provider's access token is too large to keep in a cookie")
		return
	}
	if err := c.probe(r, tok.AccessToken); err != nil {
		msg := "the API did not accept the identity provider's access token"
		if ae, ok := err.(*apiError); ok && ae.Detail != "" {
			msg += ": " + ae.Detail
		}
		refuse(http.StatusUnauthorized, msg)
		return
	}
	ttl := time.Duration(0) // a session cookie when the provider gives no expiry
	if !tok.Expiry.IsZero() {
		ttl = time.Until(tok.Expiry)
	}
	credName, credPath := c.credentialCookie(r)
	http.SetCookie(w, c.oidcCookie(r, credName, tok.AccessToken, credPath, ttl))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// oidcCookie is a cookie of the OIDC log-in: SameSite=Lax, because the
// provider sends the browser back with a cross-site top-level GET, on
// which a Strict cookie is not sent (the flow would be lost), and the page
// the callback then redirects to is still part of that cross-site
// navigation (a Strict credential would make it look logged out). Lax
// cookies go with no cross-site POST, and every change of state is a
// POST that the cross-origin protection checks as well.
func (c *Console) oidcCookie(r *http.Request, name, value, path string, ttl time.Duration) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteLaxMode}
	switch {
	case ttl < 0:
		ck.MaxAge = -1
	case ttl > 0:
		ck.MaxAge = max(int(ttl/time.Second), 1)
	}
	return ck
}

// flowCookieOf is the flow cookie's name and path for r.
func (c *Console) flowCookieOf(r *http.Request) (name, path string) {
	return c.hostCookie(r, flowCookie, Prefix+"oidc/")
}

// readFlow reads the flow from the cookie name; two of them (one planted
// for a narrower path or by a sibling domain) are refused.
func readFlow(r *http.Request, name string) (flow, error) {
	var f flow
	v, ok := onlyCookie(r, name)
	if !ok {
		return f, errors.New("no log-in flow cookie, or two")
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, err
	}
	if f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return f, errors.New("incomplete log-in flow")
	}
	f.Next = safeNext(f.Next)
	return f, nil
}

// exchangeReason is what a person can act on in a failed exchange: the
// provider's error code and description, or that it could not be reached.
func exchangeReason(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		if re.ErrorDescription != "" {
			return re.ErrorCode + ": " + re.ErrorDescription
		}
		return re.ErrorCode
	}
	return "its token endpoint could not be reached or answered unexpectedly"
}

// randomString is 32 random bytes, base64url: a state or a nonce.
func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
