// Package console is the web console of commonops, served at /console/:
// server-rendered pages (html/template) with small hand-written script
// modules and a style sheet, all embedded, and no build step.
//
// The console holds no privileges of its own. Every page and every action
// goes through the API handler it is given, as the person using it: with
// the API key they logged in with (kept in an HttpOnly, SameSite=Strict
// cookie: see credentialCookie), the access token an OpenID Provider issued
// them at an OIDC log-in (in the same cookie, SameSite=Lax: see oidc.go)
// or, when the API runs without authentication, with the request's own
// identity headers. So the console's identities, roles and tenant scoping
// are the API's, and a change to the API's policies changes the console
// with them.
package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// apiPrefix is where the API the console calls lives.
const apiPrefix = "/api/v1/operations"

// CookieName holds the credential of a console log-in: an API key or an
// OIDC access token. On https the cookie is "__Host-"+CookieName (see
// credentialCookie).
const CookieName = "commonops_console"

// hostCookie is the name and path of a log-in cookie called name, on path
// over plain http: on https it is a "__Host-" cookie (Secure, path /, no
// domain), which no other origin (a sibling subdomain, a plain-http page)
// can set, so nobody can log a person in as someone else by planting one.
// The API reads no cookies, so the wider path gives it nothing.
func (c *Console) hostCookie(r *http.Request, name, path string) (string, string) {
	if c.secure(r) {
		return "__Host-" + name, "/"
	}
	return name, path
}

// onlyCookie is the value of r's cookie name, and false when r has none or
// two (one planted beside the person's own).
func onlyCookie(r *http.Request, name string) (string, bool) {
	if cks := r.CookiesNamed(name); len(cks) == 1 {
		return cks[0].Value, true
	}
	return "", false
}

// credentialCookie is the credential cookie's name and path for r.
func (c *Console) credentialCookie(r *http.Request) (name, path string) {
	return c.hostCookie(r, CookieName, Prefix)
}

// credential is r's log-in credential, "" for none.
func (c *Console) credential(r *http.Request) string {
	name, _ := c.credentialCookie(r)
	v, _ := onlyCookie(r, name)
	return v
}

// contentSecurityPolicy is the console's Content-Security-Policy: scripts
// and styles from the console's own origin only, no inline code, no
// framing; connections to its own origin and to connect (the object
// store's, where the new-task page uploads the input file).
func contentSecurityPolicy(connect []string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		strings.Join(append([]string{"connect-src 'self'"}, connect...), " ") + "; " +
		"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}

// Config is what the console needs.
type Config struct {
	// API is the API handler (httpapi.NewServer's), which every page and
	// action calls in-process as the console's user. Required.
	API http.Handler
	// Logger receives the errors of pages that could not be rendered.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// PublicURL is the base URL browsers reach the service at: the OIDC
	// redirect URI is under it, and when it is https the log-in cookies
	// are Secure even behind a proxy that ends TLS. Required with OIDC.
	// Defaults to "": cookies are Secure on TLS requests.
	PublicURL string
	// OIDC, when set, offers a log-in with an OpenID Provider beside the
	// API key's. Defaults to nil: API keys only.
	OIDC *OIDC
	// ConnectOrigins are the CSP sources (origins, or an origin and a path
	// prefix) besides its own that the pages' scripts may send requests to
	// (connect-src): the object store's bucket when its upload URLs point
	// elsewhere (S3), as the new-task page uploads the input file there.
	// Defaults to none.
	ConnectOrigins []string
}

// Console serves the pages, their assets and the API proxy.
type Console struct {
	api         http.Handler
	log         *slog.Logger
	tmpl        map[string]*template.Template
	mux         *http.ServeMux
	httpsPublic bool       // the public URL is https
	oidc        *oidcLogin // nil without an OIDC log-in
}

// New returns the console's handler, to mount at Prefix. Cross-origin
// state-changing requests (a POST from another site) are refused with a
// 403 problem before anything runs.
func New(cfg Config) http.Handler {
	if cfg.API == nil {
		panic("console: Config.API is required")
	}
	c := &Console{api: cfg.API, log: cfg.Logger, tmpl: map[string]*template.Template{}, mux: http.NewServeMux(),
		httpsPublic: strings.HasPrefix(cfg.PublicURL, "https://")}
	if c.log == nil {
		c.log = slog.Default()
	}
	if cfg.OIDC != nil {
		c.oidc = newOIDCLogin(*cfg.OIDC, cfg.PublicURL)
		c.mux.HandleFunc("GET "+Prefix+"oidc/login", c.oidcStart)
		c.mux.HandleFunc("GET "+Prefix+"oidc/callback", c.oidcCallback)
	}
	for _, page := range []string{"tasks", "task", "new", "queues", "login", "error"} {
		c.tmpl[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html"))
	}
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	c.mux.Handle("GET "+Prefix+"static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	c.mux.HandleFunc("GET "+Prefix+"{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"tasks", http.StatusSeeOther)
	})
	c.mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	c.mux.HandleFunc("POST "+Prefix+"login", c.login)
	c.mux.HandleFunc("POST "+Prefix+"logout", c.logout)
	c.mux.HandleFunc("GET "+Prefix+"tasks", c.tasksPage)
	c.mux.HandleFunc("GET "+Prefix+"tasks/{id}", c.taskPage)
	c.mux.HandleFunc("GET "+Prefix+"tasks/{id}/download", c.download)
	c.mux.HandleFunc("GET "+Prefix+"new", c.newPage)
	c.mux.HandleFunc("GET "+Prefix+"queues", c.queuesPage)
	c.mux.Handle(Prefix+"api/", http.HandlerFunc(c.proxy))
	csp := contentSecurityPolicy(cfg.ConnectOrigins)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusForbidden, "Forbidden", "cross-origin requests that change state are refused")
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		c.mux.ServeHTTP(w, r)
	}))
}

// secure tells whether r's cookies are to be Secure: the browser reached
// the console over https.
func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.httpsPublic }

// writeProblem answers an RFC 9457 problem document.
func writeProblem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": status, "detail": detail})
}

// apiRequest is r turned into a request of the API at path (with its
// query): the same identity headers, and the console log-in's key as a
// bearer token.
func apiRequest(r *http.Request, credential, method, path string, body []byte) *http.Request {
	u, _ := url.Parse(path)
	in := r.Clone(r.Context())
	in.Method = method
	in.URL = u
	in.RequestURI = u.RequestURI()
	in.Header.Del("Cookie")
	in.Header.Del("Accept-Encoding")
	in.Header.Del("Authorization")
	if credential != "" {
		in.Header.Set("Authorization", "Bearer "+credential)
	}
	in.Body, in.ContentLength = http.NoBody, 0
	in.Header.Del("Content-Length")
	if body != nil {
		in.Body, in.ContentLength = nopCloser{bytes.NewReader(body)}, int64(len(body))
		in.Header.Set("Content-Type", "application/json")
	}
	return in
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// proxy forwards /console/api/REST to the API's /api/v1/operations/REST as
// the console's user: the pages' scripts call the API through it.
func (c *Console) proxy(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), Prefix+"api")
	target := apiPrefix + rest
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	in := apiRequest(r, c.credential(r), r.Method, target, nil)
	in.Body, in.ContentLength = r.Body, r.ContentLength
	if r.ContentLength >= 0 {
		in.Header.Set("Content-Length", fmt.Sprint(r.ContentLength))
	}
	c.api.ServeHTTP(w, in)
}

// answer is an API answer read in-process.
type answer struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (a *answer) Header() http.Header { return a.header }
func (a *answer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}
func (a *answer) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(p)
}

// apiError is an API answer other than 2xx, with its problem's detail.
type apiError struct {
	Status int
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail) }

// get calls the API at path as r's user and decodes its JSON answer into
// out; an answer other than 2xx is an *apiError.
func (c *Console) get(r *http.Request, path string, out any) error {
	return c.getAs(r, c.credential(r), path, out)
}

// getAs is get with credential instead of r's.
func (c *Console) getAs(r *http.Request, credential, path string, out any) error {
	a := &answer{header: http.Header{}}
	in := apiRequest(r, credential, http.MethodGet, path, nil)
	in.Header.Set("Accept", "application/json")
	c.api.ServeHTTP(a, in)
	if a.status < 200 || a.status > 299 {
		e := &apiError{Status: a.status}
		json.Unmarshal(a.body.Bytes(), e)
		return e
	}
	return json.Unmarshal(a.body.Bytes(), out)
}

// fail renders the error page for err, or sends to the log-in page when the
// API asks for credentials.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	status, detail := http.StatusInternalServerError, "the page could not be shown"
	if ok := asAPIError(err, &ae); ok {
		if ae.Status == http.StatusUnauthorized {
			http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		status, detail = ae.Status, ae.Detail
		if detail == "" {
			detail = ae.Title
		}
	} else {
		c.log.Error("console page", "path", r.URL.Path, "error", err)
	}
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Data: detail})
}

func asAPIError(err error, target **apiError) bool {
	e, ok := err.(*apiError)
	if ok {
		*target = e
	}
	return ok
}

// page is what every template receives.
type page struct {
	Title  string
	Nav    string
	Script string // the page's module under static/, "" for none
	LogOut bool   // a log-in cookie is set
	Data   any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.LogOut = c.credential(r) != ""
	var buf bytes.Buffer
	if err := c.tmpl[name].Execute(&buf, p); err != nil {
		c.log.Error("console template", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
