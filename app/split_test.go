package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
)

// With the roles split over two processes on one PostgreSQL database and
// the embedded bus, every task created through the API process is claimed
// by the worker process promptly, and none is lost: the API process relays
// nothing (its bus has no subscriber), and the worker process's relay, woken
// by the outbox NOTIFY, publishes the API's rows to its own worker. The
// fallback poll is an hour and each task is created only once the previous
// one finished, so a lost event leaves its task pending for good; and with
// no backlog a finished task wakes no claim round, so every task is started
// by its own event.
func TestSplitRolesClaimEveryTaskByEvent(t *testing.T) {
	t.Parallel()
	const tasks = 40
	base := app.Config{DatabaseURL: databaseURL(t, "postgres"), Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		PollInterval: time.Hour, RateLimit: -1, TenantRateLimit: -1,
		QuotaCreatesPerMinute: -1, QuotaConcurrentHeavy: -1, Logger: quiet()}
	apiCfg, workerCfg := base, base
	apiCfg.Roles, workerCfg.Roles = app.RoleAPI, app.RoleWorker+","+app.RoleMaintenance
	worker := start(t, workerCfg)
	api := start(t, apiCfg)

	var delays []time.Duration       // create → claim
	var event0, poll0, late0 float64 // claims and late events by the end of the first task
	for i := range tasks {
		id, err := createNoop(api.URL())
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			task, err := getTask(api.URL(), id)
			if err != nil {
				t.Fatal(err)
			}
			if task.Status == commonops.StatusCompleted {
				delays = append(delays, task.StartedAt.Sub(task.CreatedAt))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %d of %d: got %s 5s after its create, want completed (its event was lost)", i+1, tasks, task.Status)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if i == 0 {
			// The worker's first poll round, at its start, may still have
			// been under way when the first task was created: count from
			// the second.
			event0 = metric(t, worker.URL(), `commonops_worker_claims_total{source="event"}`)
			poll0 = metric(t, worker.URL(), `commonops_worker_claims_total{source="poll"}`)
			late0 = metric(t, worker.URL(), `commonops_worker_late_events_total`)
		}
	}
	// Each claim follows its create within the NOTIFY round trip and a
	// relay batch. Without the NOTIFY the worker's relay would find the
	// API's rows on its own poll, every second, and the median of 40 would
	// be about half a second; the median (not the slowest, which a busy
	// machine can hold up once) under 250ms shows the NOTIFY at work.
	slices.Sort(delays)
	median, slowest := delays[len(delays)/2], delays[len(delays)-1]
	if median > 250*time.Millisecond {
		t.Errorf("got the median create → claim %s (slowest %s), want under 250ms", median, slowest)
	}
	// An event that arrives over worker.LateEvent after its task's change
	// (a loaded machine) hands its claim to the poller, by design: it
	// still arrived, and is counted as late. Every other claim after the
	// first is its event's.
	event := metric(t, worker.URL(), `commonops_worker_claims_total{source="event"}`)
	poll := metric(t, worker.URL(), `commonops_worker_claims_total{source="poll"}`)
	late := metric(t, worker.URL(), `commonops_worker_late_events_total`) - late0
	if event+poll != tasks || event-event0+late < tasks-1 || poll-poll0 > late {
		t.Errorf("got %v event and %v poll claims (%v and %v after the first task, with %v late events), want %d in all, every one after the first by its event or, when the event was late, by the poller",
			event, poll, event-event0, poll-poll0, late, tasks)
	}
	if got := metric(t, worker.URL(), "commonops_worker_event_delay_seconds_count"); got < tasks-1 {
		t.Errorf("the worker timed %v events from their task's change, want at least %d (every created event but maybe the first task's, which the first poll round may have claimed)", got, tasks-1)
	}
	if got := metric(t, worker.URL(), "commonops_bus_delivered_total"); got < tasks {
		t.Errorf("the worker process's bus handed %v events to its subscribers, want at least %d (a created event a task)", got, tasks)
	}
	if got := metric(t, api.URL(), "commonops_outbox_published_total"); got != 0 {
		t.Errorf("the API process published %v outbox rows to its bus, which has no subscriber; want 0", got)
	}
	t.Logf("%v event and %v poll claims, %v late events; create → claim median %s, slowest %s", event, poll, late, median, slowest)
}

func start(t *testing.T, cfg app.Config) *app.App {
	t.Helper()
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("app.New (roles %s): %v", cfg.Roles, err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("Start (roles %s): %v", cfg.Roles, err)
	}
	t.Cleanup(a.Stop)
	return a
}

func createNoop(base string) (string, error) {
	resp, err := http.Post(base+"/api/v1/operations/tasks", "application/json",
		strings.NewReader(`{"taskType":"noop","entityType":"x"}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create: got %d %s, want 201", resp.StatusCode, b)
	}
	var c struct{ Task commonops.Task }
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	return c.Task.ID, nil
}

func getTask(base, id string) (*commonops.Task, error) {
	resp, err := http.Get(base + "/api/v1/operations/tasks/" + id)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var task commonops.Task
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get task %s: got %d, want 200", id, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&task); err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	return &task, nil
}

// metric reads one sample (name with its labels, as exposed) from a
// process's /metrics; an absent sample is 0.
func metric(t *testing.T, base, sample string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}
