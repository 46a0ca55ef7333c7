package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/console"
	"github.com/commonops/commonops/internal/oidctest"
)

// startOIDC serves in the oidc mode against p, configured from env as
// `commonops serve` reads it, with the one setting that is not a flag: an
// HTTP client that trusts p's certificate. It returns the service's base
// URL (its public URL, http://localhost:PORT).
func startOIDC(t *testing.T, p *oidctest.Provider, env map[string]string) string {
	t.Helper()
	full := map[string]string{"COMMONOPS_ADDR": "127.0.0.1:0", "COMMONOPS_DATA_DIR": t.TempDir(),
		"COMMONOPS_AUTH": "oidc", "COMMONOPS_OIDC_ISSUER": p.Issuer(), "COMMONOPS_OIDC_AUDIENCE": oidctest.Audience}
	for k, v := range env {
		full[k] = v
	}
	o, _, err := parseOptions("serve", nil, func(k string) string { return full[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{started: make(chan string, 1)}
	cfg := o.Config
	cfg.OIDCHTTPClient = p.HTTPClient()
	cfg.Logger = newLogger("info", logs)
	a, err := app.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("service log:\n%s", logs.String())
		}
	})
	return a.URL()
}

// TestConsoleOIDCInBrowser logs in to the console with a real OpenID
// Provider, in a real browser: the log-in page offers the provider beside
// the API key; its log-in lands on the task list as the person's tenant and
// role (a viewer sees its tenant's tasks, not another's, and cannot
// cancel; a submitter creates); log-out forgets the token; a tampered state
// and an expired token send the browser back to the log-in page.
func TestConsoleOIDCInBrowser(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t, map[string]map[string]any{
		"svc-acme":   {"tenant": "acme", "roles": []string{"admin"}},
		"svc-globex": {"tenant": "globex", "roles": []string{"admin"}},
	})
	p.User("vera", "vera-password", map[string]any{"tenant": "acme", "roles": []string{"viewer"}})
	p.User("sam", "sam-password", map[string]any{"tenant": "acme", "roles": []string{"submitter"}})
	base := startOIDC(t, p, map[string]string{
		"COMMONOPS_OIDC_CONSOLE_CLIENT_ID": "console", "COMMONOPS_OIDC_CONSOLE_CLIENT_SECRET": "console-secret",
	})
	p.WebClient("console", "console-secret", console.CallbackURL(base))

	var created struct {
		Task struct {
			ID string `json:"id"`
		} `json:"task"`
	}
	apiCall(t, base, "POST", "/tasks", map[string]any{"taskType": "report", "entityType": "sales"}, http.StatusCreated, &created,
		"Authorization", "Bearer "+p.Token(t, "svc-acme"))
	acmeTask := created.Task.ID
	apiCall(t, base, "POST", "/tasks", map[string]any{"taskType": "report", "entityType": "sales"}, http.StatusCreated, &created,
		"Authorization", "Bearer "+p.Token(t, "svc-globex"))
	globexTask := created.Task.ID

	// The OP's certificate is self-signed: the browser is told to accept it.
	b := newBrowser(t, base, chromedp.Flag("ignore-certificate-errors", true))
	b.run(chromedp.Navigate(b.base+"/console/tasks"), chromedp.WaitVisible("#oidc-login"))
	link := get(b, chromedp.Text("#oidc-login"))
	if want := "Log in with " + strings.TrimPrefix(p.Issuer(), "https://"); link != want {
		t.Fatalf("log-in link: got %q, want %q", link, want)
	}
	b.shoot("oidc-login")

	// logIn follows the link to the OP and logs in there.
	logIn := func(user, password string, shoot bool) {
		b.run(chromedp.Click("#oidc-login"), chromedp.WaitVisible("#username"))
		if shoot {
			b.shoot("oidc-provider")
		}
		b.run(chromedp.SendKeys("#username", user), chromedp.SendKeys("#password", password), chromedp.Click("#op-login"))
	}
	logIn("vera", "vera-password", true)
	b.waitJS(`location.pathname === '/console/tasks' && !!document.querySelector('table.tasks')`)
	b.waitJS(fmt.Sprintf(`!!document.querySelector('tr[data-task=%q]')`, acmeTask))
	if n := get(b, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('tr[data-task=%q]').length`, globexTask))); n != 0 {
		t.Fatalf("vera's task list: got globex's task, want acme's only")
	}
	b.shoot("oidc-tasks")
	cookies := b.cookies()
	ck, ok := cookies[console.CookieName]
	if !ok || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteLax || ck.Path != "/console/" || ck.Session {
		t.Fatalf("log-in cookie: got %+v, want an HttpOnly, SameSite=Lax cookie on /console/ that expires", ck)
	}
	if _, left := cookies["commonops_console_oidc"]; left {
		t.Fatalf("the log-in's flow cookie outlived its callback")
	}
	if status, _ := b.fetchText("/console/api/tasks/" + globexTask); status != http.StatusNotFound {
		t.Fatalf("vera reading globex's task through the console API: got %d, want 404", status)
	}

	// A viewer cannot cancel: the API refuses, the page says so.
	b.run(chromedp.Navigate(b.base+"/console/tasks/"+acmeTask), chromedp.WaitVisible("#task"))
	b.run(chromedp.Click(`button[data-action=cancel]`), chromedp.WaitVisible("#confirm-ok"), chromedp.Click("#confirm-ok"))
	b.waitJS(`!!document.querySelector('#action-error')`)
	if msg := get(b, chromedp.Text("#action-error")); !strings.Contains(msg, "the caller has viewer") {
		t.Fatalf("viewer's cancel: the page says %q, want the API's refusal naming vera's role", msg)
	}
	var task struct {
		Status string `json:"status"`
	}
	apiCall(t, base, "GET", "/tasks/"+acmeTask, nil, http.StatusOK, &task, "Authorization", "Bearer "+p.Token(t, "svc-acme"))
	if task.Status != "pending" {
		t.Fatalf("acme's task after vera's cancel: got %s, want pending", task.Status)
	}

	// Log-out forgets the token.
	b.run(chromedp.Click(`.logout button`), chromedp.WaitVisible("#oidc-login"))
	if _, kept := b.cookies()[console.CookieName]; kept {
		t.Fatalf("log-in cookie after log-out: got one, want none")
	}

	// A submitter creates.
	logIn("sam", "sam-password", false)
	b.waitJS(`location.pathname === '/console/tasks' && !!document.querySelector('table.tasks')`)
	samTask := b.fillNew("report", "sales", "")
	apiCall(t, base, "GET", "/tasks/"+samTask, nil, http.StatusOK, nil, "Authorization", "Bearer "+p.Token(t, "svc-acme"))

	// A callback whose state is not the log-in's is refused, and keeps
	// nothing: the browser is logged out and begins a log-in, then comes
	// back with another state.
	b.run(chromedp.Click(`.logout button`), chromedp.WaitVisible("#oidc-login"))
	b.run(chromedp.Click("#oidc-login"), chromedp.WaitVisible("#username"))
	b.run(chromedp.Navigate(b.base + "/console/oidc/callback?code=stolen&state=tampered"))
	b.run(chromedp.WaitVisible("#oidc-error"))
	if msg := get(b, chromedp.Text("#oidc-error")); !strings.Contains(msg, "state") {
		t.Fatalf("tampered state: the page says %q, want the state named", msg)
	}
	b.shoot("oidc-refused")
	if _, kept := b.cookies()[console.CookieName]; kept {
		t.Fatalf("log-in cookie after a tampered state: got one, want none")
	}

	// An expired token: the API answers 401 and the console asks for a
	// log-in again, back to the page that was asked for.
	claims := p.Claims()
	claims["iat"], claims["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
	expired := p.Sign(t, p.SigningKey(), claims)
	httpOnly := true
	get(b, chromedp.Action[cdp.Empty](func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{Name: console.CookieName, Value: expired,
			URL: b.base + "/console/", Path: "/console/", HTTPOnly: &httpOnly})
	}))
	b.run(chromedp.Navigate(b.base + "/console/queues"))
	b.waitJS(`location.pathname === '/console/login' && new URLSearchParams(location.search).get('next') === '/console/queues' && !!document.querySelector('#oidc-login')`)
}

// cookies are the browser's cookies, by name.
func (b *browser) cookies() map[string]*network.Cookie {
	b.t.Helper()
	all := get(b, chromedp.Action[[]*network.Cookie](func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return r.Cookies, err
	}))
	out := map[string]*network.Cookie{}
	for _, ck := range all {
		out[ck.Name] = ck
	}
	return out
}
