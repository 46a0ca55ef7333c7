package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/commonops/commonops"
)

// PageSize is the length of a page of the task list.
const PageSize = 25

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"time": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"str": func(s *string) string {
		if s == nil {
			return "–"
		}
		return *s
	},
	"num": func(n *int64) string {
		if n == nil {
			return "–"
		}
		return strconv.FormatInt(*n, 10)
	},
	"count": thousands,
	"pct":   func(p float64) string { return strconv.FormatFloat(math.Round(p*10)/10, 'f', -1, 64) },
	"json":  prettyJSON,
	"seconds": func(s *float64) string {
		if s == nil {
			return "–"
		}
		return (time.Duration(*s) * time.Second).String()
	},
	"add": func(a, b int) int { return a + b },
}

// prettyJSON indents raw JSON for display; "–" when there is none.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "–"
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: c.loginData(safeNext(r.URL.Query().Get("next")), "", "")})
}

type loginData struct {
	Next  string
	Error string // of the API key form
	// Provider names the OpenID Provider to log in with; "" for none.
	Provider string
	// OIDCLink begins a log-in with it, back to Next.
	OIDCLink string
	// OIDCError says why an OIDC log-in failed.
	OIDCError string
}

func (c *Console) loginData(next, keyErr, oidcErr string) loginData {
	d := loginData{Next: next, Error: keyErr, OIDCError: oidcErr}
	if c.oidc != nil {
		d.Provider = c.oidc.provider
		d.OIDCLink = Prefix + "oidc/login?next=" + url.QueryEscape(next)
	}
	return d
}

// safeNext keeps a redirect after log-in inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix + "tasks"
	}
	return next
}

// login checks the key against the API (a list of one task) and keeps it
// in the console's cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	key := strings.TrimSpace(r.PostFormValue("key"))
	next := safeNext(r.PostFormValue("next"))
	err := c.probe(r, key)
	if key == "" || err != nil {
		msg := "the key was not accepted"
		if ae, ok := err.(*apiError); ok && ae.Status != http.StatusUnauthorized && ae.Detail != "" {
			msg = ae.Detail
		}
		if key == "" {
			msg = "enter an API key"
		}
		c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Data: c.loginData(next, msg, "")})
		return
	}
	name, path := c.credentialCookie(r)
	http.SetCookie(w, &http.Cookie{Name: name, Value: key, Path: path, HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// probe asks the API whether it accepts credential (a list of one task),
// as the console would send it on r's behalf.
func (c *Console) probe(r *http.Request, credential string) error {
	var out any
	return c.getAs(r, credential, apiPrefix+"/tasks?pageSize=1", &out)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	name, path := c.credentialCookie(r)
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// listPage is the API's task list.
type listPage struct {
	Tasks       []*commonops.Task `json:"tasks"`
	Total       int               `json:"total"`
	TotalCapped bool              `json:"totalCapped"`
	Page        int               `json:"page"`
	PageSize    int               `json:"pageSize"`
	NextCursor  *string           `json:"nextCursor"`
}

type statusCount struct {
	Status   commonops.Status
	Count    int
	Capped   bool
	Selected bool
	Link     string
}

type tasksData struct {
	Filter   url.Values
	Status   string
	Page     listPage
	Counts   []statusCount
	Statuses []commonops.Status
	Prev     string
	Next     string
	From, To int
}

// CountCap is how far the task list counts the tasks of each status: a
// count past it shows as "1,000+". Counting stops there, so the six counts
// of a page over millions of tasks cost a bounded read: at the API's
// 10,000 a count under a filter the index does not cover (entity type and
// status) walked some 45,000 index entries, and six of them at once took
// the page's p99 past 150 ms over 1,000,000 tasks.
const CountCap = 1_000

// filterKeys are the task list's filters, as the page's query names them.
var filterKeys = []string{"status", "taskType", "entityType", "requestedBy", "from", "to", "search"}

// tasksPage renders a page of the task list with the counts per status,
// all under the same filters.
func (c *Console) tasksPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	search := strings.TrimSpace(q.Get("search"))
	if len(search) == 36 && strings.Count(search, "-") == 4 {
		var t commonops.Task
		if c.get(r, apiPrefix+"/tasks/"+url.PathEscape(search), &t) == nil {
			http.Redirect(w, r, Prefix+"tasks/"+url.PathEscape(t.ID), http.StatusSeeOther)
			return
		}
	}
	base := url.Values{}
	for _, k := range []string{"taskType", "entityType", "requestedBy", "search"} {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			base.Set(k, v)
		}
	}
	for k, api := range map[string]string{"from": "startDate", "to": "endDate"} {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			base.Set(api, localTime(v))
		}
	}
	pageNo := 1
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		pageNo = n
	}
	status := strings.TrimSpace(q.Get("status"))
	list := cloneValues(base)
	if status != "" {
		list.Set("status", status)
	}
	list.Set("page", strconv.Itoa(pageNo))
	list.Set("pageSize", strconv.Itoa(PageSize))
	list.Set("totalCap", "1") // the page shows the counts per status, not the list's total: the cheapest count

	d := tasksData{Filter: q, Status: status, Statuses: commonops.Statuses, Counts: make([]statusCount, len(commonops.Statuses))}
	errs := make([]error, len(commonops.Statuses)+1)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = c.get(r, apiPrefix+"/tasks?"+list.Encode(), &d.Page) })
	for i, st := range commonops.Statuses {
		wg.Go(func() {
			cq := cloneValues(base)
			cq.Set("status", string(st))
			cq.Set("pageSize", "1")
			cq.Set("totalCap", strconv.Itoa(CountCap))
			var p listPage
			errs[i+1] = c.get(r, apiPrefix+"/tasks?"+cq.Encode(), &p)
			link := cloneValues(q)
			link.Set("status", string(st))
			link.Del("page")
			d.Counts[i] = statusCount{Status: st, Count: p.Total, Capped: p.TotalCapped, Selected: string(st) == status, Link: Prefix + "tasks?" + link.Encode()}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.fail(w, r, err)
			return
		}
	}
	d.From = (pageNo-1)*PageSize + 1
	d.To = d.From + len(d.Page.Tasks) - 1
	if pageNo > 1 {
		d.Prev = pageLink(q, pageNo-1)
	}
	if len(d.Page.Tasks) == PageSize {
		d.Next = pageLink(q, pageNo+1)
	}
	c.render(w, r, http.StatusOK, "tasks", page{Title: "Tasks", Nav: "tasks", Script: "tasks.js", Data: d})
}

// localTime turns a datetime-local value (taken as UTC) into RFC 3339; other
// values go to the API as they are, for it to judge.
func localTime(v string) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return v
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func pageLink(q url.Values, n int) string {
	l := cloneValues(q)
	l.Set("page", strconv.Itoa(n))
	return Prefix + "tasks?" + l.Encode()
}

type taskData struct {
	Task   commonops.Task
	Events []commonops.Event
	Logs   []commonops.LogEntry
	Total  int
}

// taskPage renders one task with its events and its first logs.
func (c *Console) taskPage(w http.ResponseWriter, r *http.Request) {
	id := url.PathEscape(r.PathValue("id"))
	var d taskData
	if err := c.get(r, apiPrefix+"/tasks/"+id, &d.Task); err != nil {
		c.fail(w, r, err)
		return
	}
	var ev struct {
		Events []commonops.Event `json:"events"`
	}
	var logs struct {
		Logs  []commonops.LogEntry `json:"logs"`
		Total int                  `json:"total"`
	}
	if err := c.get(r, apiPrefix+"/tasks/"+id+"/events", &ev); err != nil {
		c.fail(w, r, err)
		return
	}
	if err := c.get(r, apiPrefix+"/tasks/"+id+"/logs?pageSize=1000", &logs); err != nil {
		c.fail(w, r, err)
		return
	}
	d.Events, d.Logs, d.Total = ev.Events, logs.Logs, logs.Total
	c.render(w, r, http.StatusOK, "task", page{Title: "Task " + d.Task.ID, Nav: "tasks", Script: "task.js", Data: d})
}

// download sends the browser to a signed URL of the task's file.
func (c *Console) download(w http.ResponseWriter, r *http.Request) {
	var d struct {
		DownloadURL string `json:"downloadUrl"`
	}
	path := fmt.Sprintf("%s/tasks/%s/download?file=%s", apiPrefix, url.PathEscape(r.PathValue("id")), url.QueryEscape(r.URL.Query().Get("file")))
	if err := c.get(r, path, &d); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, d.DownloadURL, http.StatusSeeOther)
}

func (c *Console) newPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "new", page{Title: "New task", Nav: "new", Script: "new.js"})
}

// queueReport is the API's GET /queues.
type queueReport struct {
	Now           time.Time `json:"now"`
	Since         time.Time `json:"since"`
	BucketSeconds int       `json:"bucketSeconds"`
	Queues        []struct {
		TaskType             string   `json:"taskType"`
		Pending              int      `json:"pending"`
		Running              int      `json:"running"`
		OldestWaitingSeconds *float64 `json:"oldestWaitingSeconds"`
		Completed            []int    `json:"completed"`
		Failed               []int    `json:"failed"`
	} `json:"queues"`
	Leases []struct {
		TaskID     string    `json:"taskId"`
		TaskType   string    `json:"taskType"`
		EntityType string    `json:"entityType"`
		WorkerID   string    `json:"workerId"`
		Attempt    int       `json:"attempt"`
		ExpiresAt  time.Time `json:"expiresAt"`
	} `json:"leases"`
}

// chart is one task type's history as SVG bars: completed up, failed down
// from a middle line.
type chart struct {
	Width, Height, Mid int
	Bars               []bar
	Label              string
	Max                int
}

type bar struct {
	X, Y, W, H int
	Failed     bool
	Title      string
}

const (
	chartBar    = 14
	chartGap    = 4
	chartHeight = 60
)

func newChart(taskType string, since time.Time, bucket int, completed, failed []int) chart {
	top := 1
	for i := range completed {
		top = max(top, completed[i], failed[i])
	}
	half := chartHeight/2 - 2
	ch := chart{Width: len(completed) * (chartBar + chartGap), Height: chartHeight, Mid: chartHeight / 2, Max: top}
	var done, failedSum int
	for i := range completed {
		x := i * (chartBar + chartGap)
		start := since.Add(time.Duration(i*bucket) * time.Second).UTC().Format("15:04")
		if h := completed[i] * half / top; completed[i] > 0 {
			h = max(h, 1)
			ch.Bars = append(ch.Bars, bar{X: x, Y: ch.Mid - h, W: chartBar, H: h, Title: fmt.Sprintf("%s: %d completed", start, completed[i])})
		}
		if h := failed[i] * half / top; failed[i] > 0 {
			h = max(h, 1)
			ch.Bars = append(ch.Bars, bar{X: x, Y: ch.Mid, W: chartBar, H: h, Failed: true, Title: fmt.Sprintf("%s: %d failed", start, failed[i])})
		}
		done += completed[i]
		failedSum += failed[i]
	}
	ch.Label = fmt.Sprintf("%s in the last hour: %d completed, %d failed", taskType, done, failedSum)
	return ch
}

type queuesData struct {
	Report queueReport
	Charts []chart
}

func (c *Console) queuesPage(w http.ResponseWriter, r *http.Request) {
	var d queuesData
	if err := c.get(r, apiPrefix+"/queues", &d.Report); err != nil {
		c.fail(w, r, err)
		return
	}
	for _, q := range d.Report.Queues {
		d.Charts = append(d.Charts, newChart(q.TaskType, d.Report.Since, d.Report.BucketSeconds, q.Completed, q.Failed))
	}
	c.render(w, r, http.StatusOK, "queues", page{Title: "Queues", Nav: "queues", Script: "queues.js", Data: d})
}

// thousands writes n with a comma between each group of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
