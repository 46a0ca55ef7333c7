package bulk

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/commonops/commonops/bulk/tabular"
	"github.com/commonops/commonops/worker"
)

// Exporter is the export processor of one entity (taskType=export): it
// reads a source page by page and streams the records to the task's output
// file, named like product-export-20261129T101500Z.csv.
//
// Task params: format (csv, the default, jsonl or xlsx) and compress (gzip);
// every param is also passed to the source (query parameters, filters).
// On failure the partial file is discarded, and a retry starts over.
type Exporter struct {
	// Entity names the output file.
	Entity string
	// Columns is the output column order.
	Columns []string
	// Open opens the source for one run.
	Open func(ctx context.Context, job worker.Job) (Source, error)
	// Now is the clock that names the file. Defaults to time.Now.
	Now func() time.Time
	// KeepFormulas writes CSV and XLSX cells that a spreadsheet would run
	// as a formula as they are, for machine-to-machine exports (the
	// entity's export.neutralizeFormulas: false). By default they are
	// neutralised with a leading quote (tabular.Neutralize).
	KeepFormulas bool
}

// columnSource is a Source whose columns depend on the task: the task
// export adds the extra columns its params ask for.
type columnSource interface {
	Columns(base []string) ([]string, error)
}

type exportParams struct {
	Format   string `json:"format"`
	Compress string `json:"compress"`
}

// Process runs one attempt of an export.
func (ex *Exporter) Process(ctx context.Context, job worker.Job) error {
	t := job.Task()
	var p exportParams
	params := map[string]any{}
	var fe problems
	if raw, ok := decodeParams(&fe, t.Params); ok {
		checkExportOptions(&fe, raw)
	}
	if len(fe) > 0 {
		return invalidParams("%s: %s", fe[0].Field, fe[0].Message)
	}
	if len(t.Params) > 0 && string(t.Params) != "null" {
		if err := json.Unmarshal(t.Params, &p); err != nil {
			return invalidParams("params: %v", err)
		}
		if err := json.Unmarshal(t.Params, &params); err != nil {
			return invalidParams("params: %v", err)
		}
	}
	format, err := tabular.ParseFormat(p.Format)
	if err != nil {
		return invalidParams("params.format: %v", err)
	}
	if p.Compress != "" && p.Compress != "gzip" {
		return invalidParams("params.compress: %q (want gzip or nothing)", p.Compress)
	}
	src, err := ex.Open(ctx, job)
	if err != nil {
		return fmt.Errorf("export %s: open source: %w", t.ID, err)
	}
	defer src.Close()
	columns := ex.Columns
	if cs, ok := src.(columnSource); ok {
		if columns, err = cs.Columns(columns); err != nil {
			return err
		}
	}

	var total *int64
	if n, ok, err := src.Count(ctx, params); err != nil {
		return fmt.Errorf("export %s: count: %w", t.ID, err)
	} else if ok {
		total = &n
		job.Report(worker.Update{TotalItems: total})
	}

	now := time.Now
	if ex.Now != nil {
		now = ex.Now
	}
	name := fmt.Sprintf("%s-export-%s%s", ex.Entity, now().UTC().Format("20060102T150405Z"), format.Ext())
	contentType := format.ContentType()
	if p.Compress == "gzip" {
		name += ".gz"
		contentType = "application/gzip"
	}
	out, err := job.Output(ctx, name, contentType)
	if err != nil {
		return fmt.Errorf("export %s: create %s: %w", t.ID, name, err)
	}
	// On an error out is left open: the worker discards an output that the
	// processor did not close.
	var dst io.Writer = out
	var gz *gzip.Writer
	if p.Compress == "gzip" {
		gz = gzip.NewWriter(out)
		dst = gz
	}
	w, err := tabular.NewWriter(dst, format, columns, tabular.WriteOptions{KeepFormulas: ex.KeepFormulas})
	if err != nil {
		return fmt.Errorf("export %s: %w", t.ID, err)
	}
	var n int64
	values := make([]any, len(columns))
	err = src.Read(ctx, params, func(page []Record) error {
		for _, r := range page {
			for i, c := range columns {
				values[i] = r[c]
			}
			if err := w.Write(values); err != nil {
				return err
			}
		}
		n += int64(len(page))
		u := worker.Update{ProcessedItems: &n, SuccessItems: &n}
		if total != nil && *total > 0 {
			progress := min(99, float64(n)*100/float64(*total))
			u.Progress = &progress
		}
		job.Report(u)
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("export %s: after %d records: %w", t.ID, n, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("export %s: write %s: %w", t.ID, name, err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return fmt.Errorf("export %s: write %s: %w", t.ID, name, err)
		}
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("export %s: commit %s: %w", t.ID, name, err)
	}
	progress, zero := 100.0, int64(0)
	msg := fmt.Sprintf("exported %d %s records to %s", n, ex.Entity, name)
	job.Report(worker.Update{Progress: &progress, TotalItems: &n, ProcessedItems: &n, SuccessItems: &n, FailedItems: &zero, Message: &msg})
	return nil
}

// Register adds to reg an import processor for every configured entity
// with a sink, an export processor for every one with a source, and the
// built-in task export, which reads tasks. cfg may be nil or empty.
//
// Custom processors are registered on the same registry with
// reg.Register(taskType, entityType, processor); an Importer or Exporter
// with a Go Sink or Source is one way to write one.
func Register(reg *worker.Registry, cfg *Config, tasks Tasks) error {
	if reg == nil || tasks == nil {
		return fmt.Errorf("bulk: Register needs a registry and the tasks to export")
	}
	reg.Register("export", TaskEntity, &Exporter{
		Entity:  TaskEntity,
		Columns: TaskColumns,
		Open: func(ctx context.Context, job worker.Job) (Source, error) {
			return &taskSource{tasks: tasks, self: job.Task()}, nil
		},
	})
	if cfg == nil {
		return nil
	}
	for _, e := range cfg.Entities {
		if e.Name == TaskEntity {
			return fmt.Errorf("bulk: entity %q is built in", TaskEntity)
		}
		if e.Sink != nil {
			reg.Register("import", e.Name, &Importer{Entity: e})
		}
		if e.Source != nil {
			reg.Register("export", e.Name, &Exporter{
				Entity:       e.Name,
				Columns:      e.Columns,
				KeepFormulas: e.KeepFormulas,
				Open: func(ctx context.Context, job worker.Job) (Source, error) {
					return OpenSource(ctx, e)
				},
			})
		}
	}
	return nil
}
