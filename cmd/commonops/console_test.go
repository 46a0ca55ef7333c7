package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The console's browser tests drive Debian's chromium through the real
// wiring (run, as main runs it). Screenshots of every page at both widths go
// to $COMMONOPS_ARTIFACTS/console (a temporary directory when unset).

// chromiumPath is the browser the tests drive: $COMMONOPS_CHROMIUM or
// chromium on the PATH (.ci/tools.sh, which scripts/test.sh runs, installs
// it). Without one the tests fail: they are not skipped.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COMMONOPS_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (.ci/tools.sh installs it): %v", err)
	}
	return p
}

// artifacts is where the screenshots go.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COMMONOPS_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless chromium with one tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
}

func newBrowser(t *testing.T, base string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	// The browser opens the console at the service's public URL
	// (http://localhost:PORT by default), where the local store's upload
	// URLs point: same origin, as the console's CSP wants.
	base = strings.Replace(base, "127.0.0.1", "localhost", 1)
	b := &browser{t: t, ctx: ctx, base: base, dir: artifacts(t)}
	b.run(chromedp.Navigate("about:blank"))
	return b
}

// run runs steps and fails the test on error.
func (b *browser) run(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("browser at %s: %v", loc, err)
	}
}

// get runs a and returns its value, failing the test on error.
func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("browser at %s: %v", loc, err)
	}
	return v
}

// shoot saves the page at 1280 and at 390 pixels wide as NAME-1280.png and
// NAME-390.png.
func (b *browser) shoot(name string) {
	b.t.Helper()
	for _, width := range []int64{390, 1280} {
		b.run(chromedp.EmulateViewport(width, 900), chromedp.Sleep(150*time.Millisecond))
		png := get(b, chromedp.FullScreenshot(100))
		path := filepath.Join(b.dir, fmt.Sprintf("%s-%d.png", name, width))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// fitsWidth checks, at a viewport width wide, that neither the page nor
// any of its tables scrolls sideways.
func (b *browser) fitsWidth(width int64) {
	b.t.Helper()
	b.run(chromedp.EmulateViewport(width, 900), chromedp.Sleep(150*time.Millisecond))
	over := get(b, chromedp.Evaluate[[]string](`[document.documentElement, ...document.querySelectorAll('.table-wrap')]
		.filter(e => e.scrollWidth > e.clientWidth)
		.map(e => (e.querySelector('caption') || e).textContent.trim().slice(0, 40) + ': ' + e.scrollWidth + ' > ' + e.clientWidth)`))
	if len(over) > 0 {
		b.t.Errorf("at %d px: got %q scrolling sideways, want nothing", width, over)
	}
	b.run(chromedp.EmulateViewport(1280, 900))
}

// waitJS polls expr in the page until it is true.
func (b *browser) waitJS(expr string) {
	b.t.Helper()
	// Evaluated again and again rather than chromedp.Poll: a poll dies
	// with the page when the page navigates, which is often what is awaited.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			b.t.Fatalf("browser at %s: waited 30s for %s (last error %v)", loc, expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fetchText fetches url from the page (following redirects, with the
// page's cookies) and returns the status and body.
func (b *browser) fetchText(url string) (int, string) {
	b.t.Helper()
	type result struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	out := get(b, chromedp.Evaluate[result](fmt.Sprintf(`fetch(%q, {credentials: 'same-origin'}).then(async r => ({status: r.status, body: await r.text()}))`, url), chromedp.EvalAwaitPromise))
	return out.Status, out.Body
}

// apiCall sends a JSON request to the API with headers (name, value pairs).
func apiCall(t *testing.T, base, method, path string, body any, want int, out any, headers ...string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, base+"/api/v1/operations"+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	json.NewDecoder(resp.Body).Decode(&raw)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: got %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// productConfig writes an entity configuration of products whose import
// writes to a SQLite table in dir and whose export reads it back.
func productConfig(t *testing.T, dir string) string {
	t.Helper()
	schema, err := filepath.Abs("../../examples/product/product.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`entities:
  product:
    schema: %s
    key: [sku]
    columns: [sku, name, category, price, stock, active, releasedAt]
    import:
      sink: {type: sql, driver: sqlite, dsn: %s, table: products, createTable: true, batchSize: 5}
    export:
      source: {type: sql, driver: sqlite, dsn: %s, query: "SELECT sku, name, category, price, stock, active, releasedAt FROM products", keyset: sku, pageSize: 100}
`, schema, filepath.Join(dir, "products.db"), filepath.Join(dir, "products.db"))
	path := filepath.Join(dir, "commonops.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fillNew fills the new-task form (and its file input when file is set)
// and submits it, then waits for the task's page and returns the task id.
func (b *browser) fillNew(taskType, entityType, file string) string {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+"/console/new"), chromedp.WaitVisible("#n-type"),
		chromedp.SendKeys("#n-type", taskType), chromedp.SendKeys("#n-entity", entityType))
	if file != "" {
		b.run(chromedp.SetUploadFiles("#n-file", []string{file}))
	}
	b.run(chromedp.Click(`#new-task button[type=submit]`))
	b.waitJS(`!!document.querySelector('#task') || (document.querySelector('#n-form-error') && !document.querySelector('#n-form-error').hidden)`)
	if msg := get(b, chromedp.Evaluate[string](`document.querySelector('#task') ? '' : document.querySelector('#n-form-error').textContent`)); msg != "" {
		b.t.Fatalf("new %s task: the form says %q", taskType, msg)
	}
	return get(b, chromedp.AttributeValue("#task", "data-task")).Value
}

// TestConsoleInBrowser runs the embedded default (SQLite, local files, no
// authentication) and drives the console: an invalid form is refused before
// it is sent; a CSV import uploaded through the New task page runs to 100%,
// its errors link serves the rejected rows; an export's output downloads; a
// running task is cancelled and retried from its page; every page is
// screenshotted at both widths.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, map[string]string{"COMMONOPS_CONFIG": productConfig(t, dir)})
	b := newBrowser(t, in.base)
	t.Logf("screenshots in %s", b.dir)

	// The form checks before it sends: nothing is created.
	b.run(chromedp.Navigate(b.base+"/console/new"), chromedp.WaitVisible("#n-type"),
		chromedp.SetValue("#n-params", "[1, 2"), chromedp.Click(`#new-task button[type=submit]`))
	b.waitJS(`document.querySelector('#n-type').getAttribute('aria-invalid') === 'true' && !document.querySelector('#n-params-error').hidden`)
	b.shoot("new-invalid")
	var none struct {
		Total int `json:"total"`
	}
	apiCall(t, in.base, "GET", "/tasks", nil, http.StatusOK, &none)
	if none.Total != 0 {
		t.Fatalf("tasks after an invalid form: got %d, want 0", none.Total)
	}

	// The import: upload through the page, watch it reach 100%.
	csv, _ := filepath.Abs("../../examples/product/products.csv")
	imp := b.fillNew("import", "product", csv)
	b.waitJS(`document.querySelector('#task').dataset.status === 'completed' && document.querySelector('#progress').value === 100`)
	b.waitJS(`!document.querySelector('a[data-file=errors]').hidden`)
	errorsHref := get(b, chromedp.AttributeValue("a[data-file=errors]", "href")).Value
	status, body := b.fetchText(errorsHref)
	if status != http.StatusOK || !strings.Contains(body, "DAI-0003") {
		t.Fatalf("errors link %s: got %d %q, want 200 with the rejected row DAI-0003", errorsHref, status, body)
	}
	b.shoot("task-import")

	// The export of what was imported: its output downloads.
	exp := b.fillNew("export", "product", "")
	b.waitJS(`document.querySelector('#task').dataset.status === 'completed' && !document.querySelector('a[data-file=output]').hidden`)
	outputHref := get(b, chromedp.AttributeValue("a[data-file=output]", "href")).Value
	status, body = b.fetchText(outputHref)
	if status != http.StatusOK || !strings.Contains(body, "FRU-0001") {
		t.Fatalf("output link %s: got %d %q, want 200 with FRU-0001", outputHref, status, body)
	}

	// A running task (held by a worker of the worker API), cancelled and
	// retried from its page.
	var created struct {
		Task struct {
			ID string `json:"id"`
		} `json:"task"`
	}
	apiCall(t, in.base, "POST", "/tasks", map[string]any{"taskType": "report", "entityType": "sales"}, http.StatusCreated, &created)
	run := created.Task.ID
	apiCall(t, in.base, "POST", "/tasks/"+run+"/claim", map[string]any{"workerId": "reporter-1"}, http.StatusOK, nil)
	apiCall(t, in.base, "POST", "/tasks/"+run+"/logs", map[string]any{"logs": []map[string]any{{"level": "info", "message": "reading sales"}}}, http.StatusCreated, nil)

	b.run(chromedp.Navigate(b.base+"/console/queues"), chromedp.WaitVisible("svg.chart"))
	queues := get(b, chromedp.Text("#queues"))
	if !strings.Contains(queues, "reporter-1") || !strings.Contains(queues, "import") {
		t.Fatalf("queues page: got %q, want the import queue and reporter-1's lease", queues)
	}
	b.shoot("queues")
	b.fitsWidth(390)

	b.run(chromedp.Navigate(b.base+"/console/tasks/"+run), chromedp.WaitVisible("#task"))
	b.waitJS(`document.querySelector('#logs').textContent.includes('reading sales')`)
	b.shoot("task-running")
	// Only the actions the status allows are offered: a running task can
	// be cancelled, not retried; a cancelled one retried, not cancelled.
	shown := func(action string) string {
		return fmt.Sprintf(`getComputedStyle(document.querySelector('button[data-action=%s]')).display !== 'none'`, action)
	}
	b.waitJS(shown("cancel") + ` && !(` + shown("retry") + `)`)
	b.run(chromedp.Click(`button[data-action=cancel]`), chromedp.WaitVisible("#confirm-ok"), chromedp.Click("#confirm-ok"))
	b.waitJS(`document.querySelector('#task').dataset.status === 'cancelled'`)
	b.waitJS(shown("retry") + ` && !(` + shown("cancel") + `)`)
	b.run(chromedp.Click(`button[data-action=retry]`), chromedp.WaitVisible("#confirm-ok"), chromedp.Click("#confirm-ok"))
	b.waitJS(`document.querySelector('#task').dataset.status === 'pending' && document.querySelectorAll('#events li').length >= 4`)

	// Bulk actions on the list: cancel a selection, retry every failed
	// task of a type.
	batch := make([]string, 3)
	for i := range batch {
		apiCall(t, in.base, "POST", "/tasks", map[string]any{"taskType": "batch", "entityType": "x", "maxRetries": 1}, http.StatusCreated, &created)
		batch[i] = created.Task.ID
	}
	apiCall(t, in.base, "POST", "/tasks/"+batch[2]+"/claim", map[string]any{"workerId": "w"}, http.StatusOK, nil)
	apiCall(t, in.base, "PATCH", "/tasks/"+batch[2]+"/progress", map[string]any{"status": "failed", "permanent": true, "errorMessage": "boom"}, http.StatusOK, nil)
	b.run(chromedp.Navigate(b.base+"/console/tasks?taskType=batch"), chromedp.WaitVisible("table.tasks"))
	for _, id := range batch[:2] {
		b.run(chromedp.Click(fmt.Sprintf(`input.select[value=%q]`, id)))
	}
	b.run(chromedp.Click("#cancel-selected"), chromedp.WaitVisible("#confirm-ok"), chromedp.Click("#confirm-ok"))
	for _, id := range batch[:2] {
		b.waitJS(fmt.Sprintf(`document.querySelector('tr[data-task=%q] [data-field=status]').textContent === 'cancelled'`, id))
	}
	b.run(chromedp.Click(`#retry-failed button[type=submit]`), chromedp.WaitVisible("#confirm-ok"), chromedp.Click("#confirm-ok"))
	b.waitJS(fmt.Sprintf(`document.querySelector('tr[data-task=%q] [data-field=status]').textContent === 'pending'`, batch[2]))
	b.waitJS(`document.querySelector('#live').textContent.startsWith('Retried 1 of 1')`)

	// The list: filters, counts and the tasks above.
	b.run(chromedp.Navigate(b.base+"/console/tasks"), chromedp.WaitVisible("table.tasks"))
	for _, id := range []string{imp, exp, run} {
		b.waitJS(fmt.Sprintf(`!!document.querySelector('tr[data-task=%q]')`, id))
	}
	completed := get(b, chromedp.Text(`[data-count=completed]`))
	if completed != "2" {
		t.Fatalf("completed count: got %q, want 2", completed)
	}
	b.shoot("tasks")
	b.fitsWidth(390)
	b.run(chromedp.Navigate(b.base+"/console/tasks?status=completed&taskType=import"), chromedp.WaitVisible("table.tasks"))
	rows := get(b, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-task]').length`))
	if rows != 1 {
		t.Fatalf("completed imports listed: got %d rows, want 1", rows)
	}
	b.run(chromedp.Navigate(b.base+"/console/new"), chromedp.WaitVisible("#n-type"))
	b.shoot("new")

	// A cross-origin POST is refused before anything runs.
	req, _ := http.NewRequest("POST", b.base+"/console/api/tasks/"+run+"/cancel", nil)
	req.Header.Set("Origin", "https://elsewhere.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("cross-origin POST: got %d %s, want a 403 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestConsoleTenantsInBrowser serves with API keys of two tenants: the
// console asks for a log-in, keeps the key in an HttpOnly, SameSite=Strict
// cookie on /console/, and the second tenant sees none of the first's work.
func TestConsoleTenantsInBrowser(t *testing.T) {
	t.Parallel()
	env := map[string]string{"COMMONOPS_DATA_DIR": t.TempDir(), "COMMONOPS_AUTH": "gateway", "COMMONOPS_GATEWAY_SECRET": "console-gateway-secret-1234"}
	key := func(tenant string) string {
		var out, errs bytes.Buffer
		if err := run(context.Background(), []string{"apikey", "create", "--tenant", tenant, "--roles", "admin", "--name", "console"}, func(k string) string { return env[k] }, &out, &errs); err != nil {
			t.Fatalf("apikey create: %v\n%s", err, errs.String())
		}
		return strings.TrimSpace(out.String())
	}
	acme, globex := key("acme"), key("globex")
	in := start(t, env)
	b := newBrowser(t, in.base)

	login := func(k string) {
		b.run(chromedp.Navigate(b.base+"/console/tasks"), chromedp.WaitVisible("#key"))
		b.run(chromedp.SendKeys("#key", k), chromedp.Submit("#key"), chromedp.WaitVisible("table.tasks"))
	}
	b.run(chromedp.Navigate(b.base+"/console/tasks"), chromedp.WaitVisible("#key"))
	b.shoot("login")
	b.run(chromedp.SendKeys("#key", "co_not-a-key"), chromedp.Submit("#key"), chromedp.WaitVisible("#key-error"))

	login(acme)
	cookies := get(b, chromedp.Action[[]*network.Cookie](func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return r.Cookies, err
	}))
	if len(cookies) != 1 || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict || cookies[0].Path != "/console/" {
		t.Fatalf("log-in cookie: got %+v, want one HttpOnly, SameSite=Strict cookie on /console/", cookies)
	}
	id := b.fillNew("report", "sales", "")
	b.run(chromedp.Navigate(b.base+"/console/tasks"), chromedp.WaitVisible(fmt.Sprintf(`tr[data-task=%q]`, id)))

	b.run(chromedp.Click(`.logout button`), chromedp.WaitVisible("#key"))
	login(globex)
	rows := get(b, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-task]').length`))
	if rows != 0 {
		t.Fatalf("globex's task list: got %d rows, want none of acme's", rows)
	}
	b.run(chromedp.Navigate(b.base + "/console/tasks/" + id))
	heading := get(b, chromedp.Text("h1"))
	if !strings.Contains(heading, "Not Found") {
		t.Fatalf("globex opening acme's task: got %q, want Not Found", heading)
	}
	status, _ := b.fetchText("/console/api/tasks/" + id)
	if status != http.StatusNotFound {
		t.Fatalf("globex reading acme's task through the console API: got %d, want 404", status)
	}
}
