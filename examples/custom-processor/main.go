// Command custom-processor shows the Go API for processors of your own,
// running in-process on the embedded defaults (SQLite task store, local file
// store) so it needs nothing else:
//
//	go run ./examples/custom-processor
//
// A processor is anything with Process(ctx, job) error, registered for a
// (taskType, entityType) pair on a worker.Registry; "*" matches any value and
// an exact pair wins over a wildcard. Inside Process, job gives the task
// (with the checkpoint of an earlier attempt), its input file, an output
// file, errors.csv, progress reports, logs and durable checkpoints. Return
// nil when done, an error to fail the attempt (retried while retries
// remain), or worker.Permanent(err) to fail the task for good; return
// promptly when ctx is cancelled (cancel or lease lost).
//
// The built-in import can also be reused with a sink written in Go: a
// bulk.Importer with Open returning your bulk.Sink keeps the file reading,
// coercion, validation, errors.csv and checkpoints, and only the storing is
// yours. This example registers both kinds.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store/sqlite"
	"github.com/commonops/commonops/worker"
)

// greet is a custom processor for ("greet", "*"): it writes one line per
// name in its params and reports progress as it goes.
func greet(ctx context.Context, job worker.Job) error {
	var p struct{ Names []string }
	if err := json.Unmarshal(job.Task().Params, &p); err != nil {
		return worker.Permanent(fmt.Errorf("params: %w", err))
	}
	out, err := job.Output(ctx, "greetings.txt", "text/plain")
	if err != nil {
		return err
	}
	for i, name := range p.Names {
		if err := ctx.Err(); err != nil {
			return err // the unclosed output is discarded
		}
		fmt.Fprintf(out, "Hello, %s!\n", name)
		done := int64(i + 1)
		progress := float64(done) * 100 / float64(len(p.Names))
		job.Report(worker.Update{ProcessedItems: &done, SuccessItems: &done, Progress: &progress})
	}
	job.Log(commonops.LogInfo, "greeted everyone", map[string]int{"count": len(p.Names)})
	return out.Close() // commits the file and records outputFileName
}

// memorySink is a bulk.Sink kept in memory: stand-in for a call to your own
// service. Write must be an idempotent upsert on the key.
type memorySink struct {
	mu       sync.Mutex
	products map[string]bulk.Record
}

func (s *memorySink) Write(ctx context.Context, batch []bulk.Record) ([]bulk.RecordError, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var refused []bulk.RecordError
	for i, r := range batch {
		if r["name"] == "Forbidden" {
			refused = append(refused, bulk.RecordError{Index: i, Message: "this name is not allowed"})
			continue
		}
		s.products[r["sku"].(string)] = r
	}
	return refused, nil
}

func (s *memorySink) Close() error { return nil }

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "custom-processor-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "commonops.db")})
	if err != nil {
		return err
	}
	defer st.Close()
	files, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: filepath.Join(dir, "files")})
	if err != nil {
		return err
	}
	svc := &operations.Service{Store: st, Objects: files}

	// The entity registry: here inline, usually bulk.LoadConfig(path).
	cfgPath := filepath.Join(dir, "commonops.yaml")
	os.WriteFile(cfgPath, []byte(`entities:
  product:
    schema: {type: object, properties: {sku: {type: string}, name: {type: string}, price: {type: number, minimum: 0}}, required: [sku, name, price]}
    key: [sku]
`), 0o644)
	cfg, err := bulk.LoadConfig(cfgPath)
	if err != nil {
		return err
	}

	reg := worker.NewRegistry()
	// The built-in processors: import/export of configured entities and the
	// task-history export.
	if err := bulk.Register(reg, cfg, st); err != nil {
		return err
	}
	// A processor of your own, for every entityType of taskType "greet".
	reg.Register("greet", "*", worker.ProcessorFunc(greet))
	// The built-in import with a Go sink.
	sink := &memorySink{products: map[string]bulk.Record{}}
	reg.Register("import", "product", &bulk.Importer{
		Entity: cfg.Entities["product"],
		Open:   func(context.Context, *bulk.Entity) (bulk.Sink, error) { return sink, nil },
	})

	pool := worker.NewPool(worker.Config{Service: svc, Registry: reg, PollInterval: 100 * time.Millisecond})
	pool.Start(ctx)
	defer pool.Stop()

	greetTask, err := create(ctx, svc, commonops.CreateInput{TaskType: "greet", EntityType: "team",
		Params: []byte(`{"names": ["Ada", "Grace", "Linus"]}`)}, "")
	if err != nil {
		return err
	}
	csv := "sku,name,price\nA-1,Apple,0.5\nA-2,Forbidden,1\nA-3,Pear,abc\n"
	importTask, err := create(ctx, svc, commonops.CreateInput{TaskType: "import", EntityType: "product"}, csv)
	if err != nil {
		return err
	}
	for _, id := range []string{greetTask, importTask} {
		t, err := wait(ctx, svc, id)
		if err != nil {
			return err
		}
		fmt.Printf("%s/%s: %s, %d succeeded, %d failed, output %v\n", t.TaskType, t.EntityType, t.Status,
			t.SuccessItems, t.FailedItems, deref(t.OutputFileName))
	}
	fmt.Printf("products stored by the Go sink: %d\n", len(sink.products))
	return nil
}

// create makes a task and, with content, stores its input file and
// confirms the upload, as a client would through the upload URL.
func create(ctx context.Context, svc *operations.Service, in commonops.CreateInput, content string) (string, error) {
	if content != "" {
		name, size := "input.csv", int64(len(content))
		in.FileName, in.FileSize = &name, &size
	}
	c, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant, Requester: "example", Input: in})
	if err != nil {
		return "", err
	}
	if content != "" {
		w, err := svc.Objects.Create(ctx, objectstore.InputKey(c.Task.ID, *in.FileName), "text/csv")
		if err != nil {
			return "", err
		}
		if _, err := strings.NewReader(content).WriteTo(w); err != nil {
			return "", err
		}
		if err := w.Close(); err != nil {
			return "", err
		}
		if _, err := svc.ConfirmUpload(ctx, commonops.DefaultTenant, c.Task.ID); err != nil {
			return "", err
		}
	}
	return c.Task.ID, nil
}

func wait(ctx context.Context, svc *operations.Service, id string) (*commonops.Task, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		t, err := svc.Get(ctx, commonops.DefaultTenant, id)
		if err != nil {
			return nil, err
		}
		if t.Status.Terminal() {
			return t, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("task %s did not finish in 30s", id)
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
