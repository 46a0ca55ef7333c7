// Command remote-worker is an example of a worker that runs commonops tasks
// in its own process, through the worker API and the workerclient SDK.
//
// It counts the lines of a task's input file (or makes up 50 items when the
// task has none), reports progress and logs as it goes, uploads a small CSV
// report as the output file and completes the task. When the task is
// cancelled, the next progress call says so and the worker stops.
//
// Run it next to a commonops server:
//
//	go run ./cmd/commonops &                      # API, worker and maintenance on :8080
//	go run ./examples/remote-worker -task-type count-lines -entity-type '*'
//	curl -X POST localhost:8080/api/v1/operations/tasks \
//	     -H 'Content-Type: application/json' \
//	     -d '{"taskType":"count-lines","entityType":"report"}'
//
// The worker polls for pending tasks of its type every -poll interval; with
// -task ID it claims and runs that one task and exits (a service that
// receives task ids from pub/sub would do this per event). Flags:
//
//	-server       the commonops base URL (default $COMMONOPS_URL or http://localhost:8080)
//	-tenant       X-Tenant-Id to work for (default: the server's default tenant)
//	-worker-id    the name leases are taken under (default remote-hostname-pid)
//	-task-type    the taskType to poll for (required without -task)
//	-entity-type  the entityType to poll for; * for any (default *)
//	-task         run this one task id and exit
//	-lease        the lease to claim with (default 30s)
//	-poll         the polling period (default 2s)
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/workerclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "remote-worker:", err)
		os.Exit(1)
	}
}

type config struct {
	server, tenant, workerID, taskType, entityType, task string
	lease, poll                                          time.Duration
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	host, _ := os.Hostname()
	cfg := config{}
	fs := flag.NewFlagSet("remote-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := getenv("COMMONOPS_URL")
	if server == "" {
		server = "http://localhost:8080"
	}
	fs.StringVar(&cfg.server, "server", server, "commonops base URL")
	fs.StringVar(&cfg.tenant, "tenant", "", "X-Tenant-Id to work for")
	fs.StringVar(&cfg.workerID, "worker-id", fmt.Sprintf("remote-%s-%d", host, os.Getpid()), "worker id for leases")
	fs.StringVar(&cfg.taskType, "task-type", "", "taskType to poll for")
	fs.StringVar(&cfg.entityType, "entity-type", "*", "entityType to poll for (* for any)")
	fs.StringVar(&cfg.task, "task", "", "run this one task id and exit")
	fs.DurationVar(&cfg.lease, "lease", 30*time.Second, "lease to claim with")
	fs.DurationVar(&cfg.poll, "poll", 2*time.Second, "polling period")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.task == "" && cfg.taskType == "" {
		return errors.New("give -task-type to poll for, or -task ID to run one task")
	}
	var opts []workerclient.Option
	if cfg.tenant != "" {
		opts = append(opts, workerclient.WithTenant(cfg.tenant))
	}
	w := &worker{c: workerclient.New(cfg.server, opts...), cfg: cfg, log: slog.New(slog.NewTextHandler(stderr, nil))}
	if cfg.task != "" {
		return w.runOne(ctx, cfg.task)
	}
	return w.poll(ctx)
}

type worker struct {
	c   *workerclient.Client
	cfg config
	log *slog.Logger
}

// poll claims pending tasks of the configured kind until ctx ends.
func (w *worker) poll(ctx context.Context) error {
	entity := w.cfg.entityType
	if entity == "*" {
		entity = ""
	}
	for {
		tasks, err := w.c.Pending(ctx, w.cfg.taskType, entity, 10)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("list pending tasks", "err", err)
		}
		for _, t := range tasks {
			if err := w.runOne(ctx, t.ID); err != nil && !workerclient.IsConflict(err) {
				w.log.Warn("task failed to run", "task", t.ID, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.cfg.poll):
		}
	}
}

// runOne claims a task and runs it to its end.
func (w *worker) runOne(ctx context.Context, id string) error {
	t, err := w.c.Claim(ctx, id, w.cfg.workerID, w.cfg.lease)
	if err != nil {
		return err
	}
	log := w.log.With("task", t.ID, "attempt", t.Attempt)
	log.Info("claimed")
	err = w.process(ctx, t)
	switch {
	case errors.Is(err, workerclient.ErrCancelled):
		log.Info("task cancelled; stopped")
		return nil
	case workerclient.IsConflict(err):
		log.Warn("the task moved on without us (lease lost?)", "err", err)
		return nil
	case err != nil:
		log.Warn("attempt failed", "err", err)
		_, ferr := w.c.Fail(context.WithoutCancel(ctx), t.ID, t.Attempt, err.Error(), false)
		return errors.Join(err, ferr)
	}
	log.Info("completed")
	return nil
}

func (w *worker) process(ctx context.Context, t *commonops.Task) error {
	items, err := w.items(ctx, t)
	if err != nil {
		return err
	}
	total := int64(len(items))
	if err := w.c.Logs(ctx, t.ID, t.Attempt, workerclient.LogLine{Level: commonops.LogInfo, Message: fmt.Sprintf("processing %d items", total)}); err != nil {
		return err
	}
	var report bytes.Buffer
	report.WriteString("line,length\n")
	lastReport := time.Time{}
	for i, item := range items {
		fmt.Fprintf(&report, "%d,%d\n", i+1, len(item))
		time.Sleep(20 * time.Millisecond) // the "work"
		done := int64(i + 1)
		if time.Since(lastReport) >= 500*time.Millisecond || done == total {
			lastReport = time.Now()
			msg := fmt.Sprintf("processed %d of %d", done, total)
			// Progress renews the lease and tells us about a cancellation.
			if _, err := w.c.Progress(ctx, t.ID, t.Attempt, commonops.Progress{
				TotalItems: &total, ProcessedItems: &done, SuccessItems: &done, Message: &msg,
			}); err != nil {
				return err
			}
		}
	}
	name := "line-lengths.csv"
	u, err := w.c.OutputURL(ctx, t.ID, t.Attempt, name, "text/csv")
	if err != nil {
		return err
	}
	if err := w.c.Upload(ctx, u, bytes.NewReader(report.Bytes())); err != nil {
		return err
	}
	msg := "done"
	_, err = w.c.Complete(ctx, t.ID, t.Attempt, commonops.Progress{OutputFileName: &name, Message: &msg})
	return err
}

// items reads the input file's lines through its download URL, or makes up
// 50 items for a task without input.
func (w *worker) items(ctx context.Context, t *commonops.Task) ([]string, error) {
	if t.FileName == nil {
		items := make([]string, 50)
		for i := range items {
			items[i] = fmt.Sprintf("item %d", i+1)
		}
		return items, nil
	}
	d, err := w.c.DownloadURL(ctx, t.ID, "input")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download input: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download input: %s", resp.Status)
	}
	var items []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		items = append(items, sc.Text())
	}
	return items, sc.Err()
}
