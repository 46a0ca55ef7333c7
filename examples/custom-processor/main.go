// Command custom-processor runs the stock commonops server (the HTTP API,
// the outbox, maintenance and the built-in processors, on the embedded
// default: SQLite and local files under ./data) with two processors of its
// own. It needs nothing else:
//
//	go run ./examples/custom-processor
//
// then, in another shell:
//
//	API=http://localhost:8080/api/v1/operations
//	ID=$(curl -s -X POST $API/tasks -H 'Content-Type: application/json' \
//	  -d '{"taskType":"greet","entityType":"team","params":{"names":["Ada","Grace"]}}' | jq -r .task.id)
//	sleep 1; curl -s "$(curl -s "$API/tasks/$ID/download" | jq -r .downloadUrl)"
//
// A processor is anything with Process(ctx, job) error, registered with
// App.Register for a (taskType, entityType) pair; "*" matches any value and
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
	"os/signal"
	"sync"
	"syscall"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/bulk"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(ctx, app.Config{}, &memorySink{products: map[string]bulk.Record{}})
	if err != nil {
		log.Fatal(err)
	}
	if err := a.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// productConfig is the entity registry: here inline, usually a file passed
// as app.Config.ConfigFile (--config).
const productConfig = `entities:
  product:
    schema: {type: object, properties: {sku: {type: string}, name: {type: string}, price: {type: number, minimum: 0}}, required: [sku, name, price]}
    key: [sku]
`

// newApp is the stock server with the example's processors: greet for every
// entityType, and the built-in import of products into sink.
func newApp(ctx context.Context, cfg app.Config, sink bulk.Sink) (*app.App, error) {
	entities, err := bulk.ParseConfig([]byte(productConfig), "product.yaml")
	if err != nil {
		return nil, err
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.Register("greet", "*", worker.ProcessorFunc(greet))
	a.Register("import", "product", &bulk.Importer{
		Entity: entities.Entities["product"],
		Open:   func(context.Context, *bulk.Entity) (bulk.Sink, error) { return sink, nil },
	})
	return a, nil
}
