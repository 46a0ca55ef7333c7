package console_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/console"
	"github.com/commonops/commonops/httpapi"
	"github.com/commonops/commonops/internal/oidctest"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
)

// oidcSite is the API in the oidc mode with the console's OIDC log-in,
// against a real OP with two people: ada (tenant acme, viewer) and nemo,
// whose tokens name no tenant.
type oidcSite struct {
	op   *oidctest.Provider
	base string
}

func newOIDCSite(t *testing.T) *oidcSite {
	t.Helper()
	p := oidctest.Start(t, nil)
	p.User("ada", "ada-password", map[string]any{"tenant": "acme", "roles": []string{"viewer"}})
	p.User("nemo", "nemo-password", map[string]any{"roles": []string{"viewer"}})
	verifier, err := auth.NewOIDC(t.Context(), auth.OIDCConfig{Issuer: p.Issuer(), Audience: oidctest.Audience, HTTPClient: p.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	store := testdb.SQLite(t)
	authn, err := auth.NewAuthenticator(auth.Config{Mode: auth.ModeOIDC, OIDC: verifier, Keys: auth.NewKeys(store, auth.KeysConfig{})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	p.WebClient("console", "console-secret", console.CallbackURL(base))
	ends := verifier.Endpoints()
	var api http.Handler
	cons := console.New(console.Config{
		API:       http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.ServeHTTP(w, r) }),
		Logger:    slog.New(slog.DiscardHandler),
		PublicURL: base,
		OIDC: &console.OIDC{Issuer: p.Issuer(), ClientID: "console", ClientSecret: "console-secret",
			AuthURL: ends.Authorization, TokenURL: ends.Token, Verifier: verifier, HTTPClient: p.HTTPClient()},
	})
	done := make(chan struct{})
	api = httpapi.NewServer(httpapi.Config{Service: &operations.Service{Store: store}, Console: cons, Auth: authn,
		StreamsDone: done, Logger: slog.New(slog.DiscardHandler)})
	srv.Config.Handler = api
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return &oidcSite{op: p, base: base}
}

// client is a browser stand-in: cookies, the OP's certificate trusted,
// and redirects followed up to (not into) the console's callback.
func (s *oidcSite) client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: s.op.HTTPClient().Transport,
		CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if r.URL.Path == "/console/oidc/callback" {
				return http.ErrUseLastResponse
			}
			return nil
		}}
}

// begin starts a log-in and logs user in at the OP; it returns the
// callback URL the OP sends the browser to, with its code and state.
func (s *oidcSite) begin(t *testing.T, c *http.Client, user string) *url.URL {
	t.Helper()
	resp, err := c.Get(s.base + "/console/oidc/login?next=/console/queues")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("log-in start: got %d at %s, want the OP's log-in page", resp.StatusCode, resp.Request.URL)
	}
	resp, err = c.PostForm(s.op.Issuer()+"/login/username", url.Values{"id": {id}, "username": {user}, "password": {user + "-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil || cb.Path != "/console/oidc/callback" {
		t.Fatalf("OP log-in: got %d to %v, want a redirect to the console's callback", resp.StatusCode, cb)
	}
	return cb
}

// callback sends the browser to the callback URL and returns the answer
// and its body, without following the console's redirect.
func callback(t *testing.T, c *http.Client, to string) (*http.Response, string) {
	t.Helper()
	once := *c
	once.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := once.Get(to)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// credential is the console's log-in cookie the answer sets, or "".
func credential(resp *http.Response) string {
	for _, ck := range resp.Cookies() {
		if ck.Name == console.CookieName && ck.MaxAge >= 0 {
			return ck.Value
		}
	}
	return ""
}

func TestOIDCLogInWithoutBrowser(t *testing.T) {
	t.Parallel()
	s := newOIDCSite(t)
	c := s.client(t)
	// The log-in page offers the provider, back to the page asked for, and
	// keeps to the console's CSP (no inline style or script).
	resp, body := callback(t, c, s.base+"/console/login?next=/console/queues")
	link := `href="/console/oidc/login?next=%2Fconsole%2Fqueues"`
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, link) || !strings.Contains(body, "Log in with "+strings.TrimPrefix(s.op.Issuer(), "https://")) {
		t.Fatalf("log-in page: got %d, want 200 with a link %s naming the provider:\n%s", resp.StatusCode, link, body)
	}
	if strings.Contains(body, " style=") || strings.Contains(body, "<script>") {
		t.Fatalf("log-in page: got inline style or script, which the CSP refuses")
	}
	cb := s.begin(t, c, "ada")
	resp, body = callback(t, c, cb.String())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/queues" {
		t.Fatalf("callback: got %d to %q, want 303 to /console/queues: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == console.CookieName {
			ck = k
		}
	}
	if ck == nil || ck.Value == "" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/console/" || ck.MaxAge <= 0 {
		t.Fatalf("log-in cookie: got %+v, want an HttpOnly, SameSite=Lax cookie on /console/ that expires with the token", ck)
	}
	// The cookie holds the access token, which the API verifies: the
	// console shows acme's tasks.
	req, _ := http.NewRequest("GET", s.base+"/api/v1/operations/tasks", nil)
	req.Header.Set("Authorization", "Bearer "+ck.Value)
	api, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	api.Body.Close()
	if api.StatusCode != http.StatusOK {
		t.Fatalf("the API with the cookie's token: got %d, want 200", api.StatusCode)
	}
	// The flow is good for one callback: the same answer again is refused.
	resp, body = callback(t, c, cb.String())
	if resp.StatusCode != http.StatusBadRequest || credential(resp) != "" || !strings.Contains(body, "was not begun here") {
		t.Fatalf("the callback again: got %d (credential %q), want 400 saying the log-in was not begun here", resp.StatusCode, credential(resp))
	}
}

// TestOIDCCallbackRefusals: whatever goes wrong on the way back from the
// provider, the log-in page says what, and no credential is kept.
func TestOIDCCallbackRefusals(t *testing.T) {
	t.Parallel()
	s := newOIDCSite(t)
	for name, c := range map[string]struct {
		// callback turns the OP's answer into the one the console gets,
		// and may change the browser's flow cookie.
		callback func(t *testing.T, cl *http.Client, cb *url.URL) string
		user     string // who logs in at the OP; ada when ""
		status   int
		says     string
	}{
		"a token the API refuses": {
			callback: func(t *testing.T, _ *http.Client, cb *url.URL) string { return cb.String() },
			user:     "nemo",
			status:   http.StatusUnauthorized, says: "the API did not accept the identity provider&#39;s access token: token has no tenant",
		},
		"provider refused": {
			callback: func(t *testing.T, _ *http.Client, cb *url.URL) string {
				q := url.Values{"error": {"access_denied"}, "error_description": {"the user said no"}, "state": {cb.Query().Get("state")}}
				return cb.Scheme + "://" + cb.Host + cb.Path + "?" + q.Encode()
			},
			status: http.StatusUnauthorized, says: "the identity provider refused the log-in (access_denied): the user said no",
		},
		"provider refused, another state": {
			callback: func(t *testing.T, _ *http.Client, cb *url.URL) string {
				q := url.Values{"error": {"access_denied"}, "error_description": {"call 555-0100 to log in"}, "state": {"forged"}}
				return cb.Scheme + "://" + cb.Host + cb.Path + "?" + q.Encode()
			},
			status: http.StatusBadRequest, says: "does not match this log-in (state)",
		},
		"wrong state": {
			callback: func(t *testing.T, _ *http.Client, cb *url.URL) string {
				q := cb.Query()
				q.Set("state", "not-"+q.Get("state"))
				cb.RawQuery = q.Encode()
				return cb.String()
			},
			status: http.StatusBadRequest, says: "does not match this log-in (state)",
		},
		"missing state": {
			callback: func(t *testing.T, _ *http.Client, cb *url.URL) string {
				q := cb.Query()
				q.Del("state")
				cb.RawQuery = q.Encode()
				return cb.String()
			},
			status: http.StatusBadRequest, says: "does not match this log-in (state)",
		},
		"no flow cookie (another browser)": {
			callback: func(t *testing.T, cl *http.Client, cb *url.URL) string {
				cl.Jar, _ = cookiejar.New(nil)
				return cb.String()
			},
			status: http.StatusBadRequest, says: "was not begun here",
		},
		"failed exchange": {
			callback: func(t *testing.T, _ *http.Client, cb *url.URL) string {
				q := cb.Query()
				q.Set("code", "not-a-code")
				cb.RawQuery = q.Encode()
				return cb.String()
			},
			status: http.StatusBadGateway, says: "the identity provider did not complete the log-in: invalid_grant",
		},
		"another nonce": {
			callback: func(t *testing.T, cl *http.Client, cb *url.URL) string {
				setFlow(t, cl, cb, func(f map[string]any) { f["n"] = "another-nonce" })
				return cb.String()
			},
			status: http.StatusUnauthorized, says: "ID token nonce does not match",
		},
		"another verifier": {
			callback: func(t *testing.T, cl *http.Client, cb *url.URL) string {
				setFlow(t, cl, cb, func(f map[string]any) { f["v"] = strings.Repeat("x", 43) })
				return cb.String()
			},
			status: http.StatusBadGateway, says: "invalid_grant",
		},
	} {
		t.Run(name, func(t *testing.T) {
			cl := s.client(t)
			user := c.user
			if user == "" {
				user = "ada"
			}
			to := c.callback(t, cl, s.begin(t, cl, user))
			resp, body := callback(t, cl, to)
			if resp.StatusCode != c.status || !strings.Contains(body, c.says) {
				t.Fatalf("got %d, want %d with %q on the log-in page:\n%s", resp.StatusCode, c.status, c.says, body)
			}
			if !strings.Contains(body, `id="oidc-login"`) || !strings.Contains(body, `id="oidc-error"`) {
				t.Fatalf("got a page without the OIDC log-in and its error, want the log-in page:\n%s", body)
			}
			if got := credential(resp); got != "" {
				t.Fatalf("got a credential cookie %q, want none", got)
			}
		})
	}
}

// setFlow changes the flow cookie the browser holds for the callback.
func setFlow(t *testing.T, cl *http.Client, cb *url.URL, change func(map[string]any)) {
	t.Helper()
	for _, ck := range cl.Jar.Cookies(cb) {
		if ck.Name != "commonops_console_oidc" {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
		if err != nil {
			t.Fatal(err)
		}
		var f map[string]any
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		change(f)
		raw, _ = json.Marshal(f)
		cl.Jar.SetCookies(cb, []*http.Cookie{{Name: ck.Name, Value: base64.RawURLEncoding.EncodeToString(raw), Path: "/console/oidc/"}})
		return
	}
	t.Fatal("the browser holds no flow cookie")
}

// TestOIDCLogInStart: the link sends the browser to the provider with a
// PKCE S256 challenge, state and nonce, and keeps what the callback checks
// in a "__Host-" cookie (the public URL is https: Secure, path /, no
// domain, so no other origin can plant one), HttpOnly and SameSite=Lax.
func TestOIDCLogInStart(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, nil)
	verifier, err := auth.NewOIDC(t.Context(), auth.OIDCConfig{Issuer: p.Issuer(), Audience: oidctest.Audience, HTTPClient: p.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	ends := verifier.Endpoints()
	cons := console.New(console.Config{API: http.NotFoundHandler(), PublicURL: "https://ops.example.com",
		OIDC: &console.OIDC{Issuer: p.Issuer(), ClientID: "console", AuthURL: ends.Authorization, TokenURL: ends.Token, Verifier: verifier}})
	for next, want := range map[string]string{"/console/queues": "/console/queues", "//elsewhere.example/": "/console/tasks"} {
		rec := httptest.NewRecorder()
		cons.ServeHTTP(rec, httptest.NewRequest("GET", "/console/oidc/login?next="+url.QueryEscape(next), nil))
		resp := rec.Result()
		to, err := resp.Location()
		if resp.StatusCode != http.StatusSeeOther || err != nil || to.Scheme+"://"+to.Host+to.Path != ends.Authorization {
			t.Fatalf("start: got %d to %v, want 303 to %s", resp.StatusCode, to, ends.Authorization)
		}
		cks := resp.Cookies()
		if len(cks) != 1 || cks[0].Name != "__Host-commonops_console_oidc" || !cks[0].Secure || !cks[0].HttpOnly || cks[0].SameSite != http.SameSiteLaxMode ||
			cks[0].Path != "/" || cks[0].Domain != "" || cks[0].MaxAge != 600 {
			t.Fatalf("flow cookie: got %+v, want one __Host- cookie, Secure, HttpOnly, SameSite=Lax, on / for 10 minutes", cks)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(cks[0].Value)
		var f struct{ S, N, V, Next string }
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		// A second flow cookie (planted for a narrower path) is refused,
		// even with the right state: 400 before any exchange (which this
		// code would fail, 502).
		cb := httptest.NewRequest("GET", "/console/oidc/callback?code=x&state="+url.QueryEscape(f.S), nil)
		cb.AddCookie(&http.Cookie{Name: cks[0].Name, Value: cks[0].Value}) // planted: any valid flow would do
		cb.AddCookie(&http.Cookie{Name: cks[0].Name, Value: cks[0].Value})
		rec = httptest.NewRecorder()
		cons.ServeHTTP(rec, cb)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("callback with two flow cookies: got %d, want 400", rec.Code)
		}
		sum := sha256.Sum256([]byte(f.V))
		q := to.Query()
		for param, want := range map[string]string{
			"response_type": "code", "client_id": "console", "scope": "openid",
			"redirect_uri": "https://ops.example.com/console/oidc/callback", "state": f.S, "nonce": f.N,
			"code_challenge_method": "S256", "code_challenge": base64.RawURLEncoding.EncodeToString(sum[:]),
		} {
			if got := q.Get(param); got != want || want == "" {
				t.Errorf("authorization request %s: got %q, want %q", param, got, want)
			}
		}
		if f.Next != want {
			t.Errorf("next=%q: the flow returns to %q, want %q", next, f.Next, want)
		}
	}
}
