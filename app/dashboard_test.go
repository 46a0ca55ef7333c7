package app_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
)

// Every metric the Grafana dashboard (deploy/grafana/commonops.json) queries
// is on a working process's /metrics, with every label the query groups by
// or matches on (job, which Prometheus adds, aside): a renamed metric or
// label fails here instead of leaving an empty panel.
func TestDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../deploy/grafana/commonops.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}

	// A process that has answered requests, run a task, published its
	// events and delivered its webhook, so every labelled series exists.
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	a := start(t, app.Config{DatabaseURL: databaseURL(t, "postgres"), Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		RateLimit: -1, TenantRateLimit: -1, QuotaCreatesPerMinute: -1, QuotaConcurrentHeavy: -1, Logger: quiet(),
		WebhookSecret: "dashboard-secret", WebhookAllow: "127.0.0.1"})
	resp, err := http.Post(a.URL()+"/api/v1/operations/tasks", "application/json",
		strings.NewReader(`{"taskType":"noop","entityType":"x","callbackUrl":"`+hook.URL+`/done"}`))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Task commonops.Task }
	err = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create with a callbackUrl: got %d, %v, want 201", resp.StatusCode, err)
	}
	id := c.Task.ID
	deadline := time.Now().Add(10 * time.Second)
	for {
		task, err := getTask(a.URL(), id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status == commonops.StatusCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: got %s after 10s, want completed", id, task.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The queue gauges have samples only for types with unfinished tasks:
	// a type no worker runs stays pending however long the wait below.
	resp, err = http.Post(a.URL()+"/api/v1/operations/tasks", "application/json", strings.NewReader(`{"taskType":"unclaimed","entityType":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create a task no worker runs: got %d, want 201", resp.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); metric(t, a.URL(), `commonops_webhook_attempts_total{outcome="delivered"}`) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no webhook delivered within 10s")
		}
	}
	labels := scrape(t, a.URL())

	metricRE := regexp.MustCompile(`commonops_[a-z_]+`)
	byRE := regexp.MustCompile(`by \(([^)]*)\)`)
	matcherRE := regexp.MustCompile(`([a-z_]+)\s*(?:=~|!~|!=|=)\s*"`)
	queried := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricRE.FindAllString(tg.Expr, -1)
			if len(names) != 1 {
				t.Errorf("panel %q: query %s names %d metrics, want 1", p.Title, tg.Expr, len(names))
				continue
			}
			name := names[0]
			have, ok := labels[name]
			if !ok {
				t.Errorf("panel %q: metric %s is not on /metrics", p.Title, name)
				continue
			}
			queried++
			var want []string
			for _, m := range byRE.FindAllStringSubmatch(tg.Expr, -1) {
				for l := range strings.SplitSeq(m[1], ",") {
					want = append(want, strings.TrimSpace(l))
				}
			}
			for _, m := range matcherRE.FindAllStringSubmatch(tg.Expr, -1) {
				want = append(want, m[1])
			}
			for _, l := range want {
				if l != "job" && l != "" && !have[l] {
					t.Errorf("panel %q: metric %s has no label %s (got %v)", p.Title, name, l, have)
				}
			}
		}
	}
	if queried < 10 {
		t.Errorf("got %d queries checked, want the dashboard's (at least 10)", queried)
	}
}

// scrape reads base's /metrics into the label names seen on each series
// name (histogram series under their _bucket, _sum and _count names).
func scrape(t *testing.T, base string) map[string]map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	labelRE := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	out := map[string]map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i > 0 {
			name, rest = line[:i], line[i:]
		}
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		if strings.HasPrefix(rest, "{") {
			for _, m := range labelRE.FindAllStringSubmatch(rest[:strings.LastIndex(rest, "}")+1], -1) {
				out[name][m[1]] = true
			}
		}
	}
	return out
}
