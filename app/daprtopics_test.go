package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/internal/daprtest"
	"github.com/commonops/commonops/internal/logtest"
)

// TestDaprTopics runs a task to completion through a real daprd, with the
// poller off (so the created event made the trip), once publishing every
// topic and once only the worker's (DaprTopics). Published rows are kept
// (OutboxRetention), so the outbox shows what went to the sidecar: the
// completion too by default, the created event alone with the worker's
// topics, while task_events records the completion in both.
func TestDaprTopics(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, topics, published string
		want                    []string
	}{
		{"every topic", "", "created,progress,retried,cancelled,completed,failed", []string{commonops.TopicCreated, commonops.TopicCompleted}},
		{"the worker's", "created,retried,cancelled", "created,retried,cancelled", []string{commonops.TopicCreated}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dbURL := databaseURL(t, "postgres")
			var logs logtest.Buffer
			port := daprtest.FreePort(t)
			a, err := app.New(context.Background(), app.Config{
				DatabaseURL: dbURL, Addr: "127.0.0.1:0", DataDir: t.TempDir(),
				PubSub: app.PubSubDapr, DaprURL: fmt.Sprintf("http://127.0.0.1:%d", port), DaprAppAddr: "127.0.0.1:0",
				DaprTopics: tt.topics, OutboxRetention: time.Hour, PollInterval: time.Hour, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Stop)
			daprtest.Start(t, appPort(t, a), daprtest.HTTPPort(port))
			if want := `"published":"` + tt.published + `"`; !strings.Contains(logs.String(), want) {
				t.Errorf("the start-up log lacks %s:\n%s", want, logs.String())
			}

			id := runNoop(t, a, "its created event did not reach the worker through the sidecar")

			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			// The completion's outbox row, if any, commits with the task's
			// status: it is there now, sent or not.
			queued := column(t, conn, `SELECT topic FROM outbox WHERE task_id = $1 ORDER BY id`, id)
			if !slices.Equal(queued, tt.want) {
				t.Errorf("outbox topics %v, want %v", queued, tt.want)
			}
			events := column(t, conn, `SELECT event_type FROM task_events WHERE task_id = $1 ORDER BY id`, id)
			if want := []string{commonops.EventCreated, commonops.EventStarted, commonops.EventCompleted}; !slices.Equal(events, want) {
				t.Errorf("task events %v, want %v (every change is recorded, published or not)", events, want)
			}
		})
	}
}

func column(t *testing.T, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestParseDaprTopics(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{in: "", want: ""},
		{in: "cancelled, retried,created", want: "operations.task.created operations.task.retried operations.task.cancelled"},
		{in: "operations.task.failed,created,retried,cancelled,completed", want: "operations.task.created operations.task.retried operations.task.cancelled operations.task.completed operations.task.failed"},
		{in: "created,retried", err: "lacks cancelled"},
		{in: "completed", err: "lacks created, retried, cancelled"},
		{in: "created,retried,cancelled,finished", err: `unknown topic "finished"`},
		{in: "created,retried,cancelled,", err: `unknown topic ""`},
	} {
		got, err := app.ParseDaprTopics(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDaprTopics(%q): got %v, %v, want an error mentioning %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("ParseDaprTopics(%q): got %q, %v, want %q", tt.in, strings.Join(got, " "), err, tt.want)
		}
	}
}

// FuzzParseDaprTopics: any input either fails or gives known topics in
// their canonical order, the worker's among them, that parse back to
// themselves.
func FuzzParseDaprTopics(f *testing.F) {
	for _, s := range []string{"", "created,retried,cancelled", "operations.task.failed, created,retried ,cancelled", "created,,", "a.b", " , "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := app.ParseDaprTopics(s)
		if err != nil || got == nil {
			return
		}
		last := -1
		for _, topic := range got {
			i := slices.Index(commonops.Topics, topic)
			if i <= last {
				t.Fatalf("ParseDaprTopics(%q) = %v: %q unknown or out of order", s, got, topic)
			}
			last = i
		}
		for _, w := range commonops.WorkerTopics {
			if !slices.Contains(got, w) {
				t.Fatalf("ParseDaprTopics(%q) = %v lacks %s", s, got, w)
			}
		}
		again, err := app.ParseDaprTopics(strings.Join(got, ","))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ParseDaprTopics(%q) = %v, which parses to %v, %v", s, got, again, err)
		}
	})
}
