package bulk

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk/tabular"
	"github.com/commonops/commonops/worker"
)

// Importer is the import processor of one entity (taskType=import): it
// streams the task's input file, maps, coerces and validates each row, and
// sends valid records to a sink in batches. Bad rows go to errors.csv with
// their row number, original columns and an error column.
//
// Task params: format (csv|jsonl|xlsx; sniffed when absent), delimiter,
// encoding (utf-8|latin1|windows-1252), sheet, columnMapping (file column →
// schema property; "" drops the column), dryRun (validate only), maxErrors
// (stop once that many rows are bad; 0 for no limit) and onError (skip, the
// default, or abort at the first bad row). Batches already committed before
// a stop stay committed.
//
// After each committed batch it checkpoints the last committed row, and a
// later attempt sends only rows past it: rows up to the checkpoint are read
// and validated again (so errors.csv and the counts are whole) but not sent.
type Importer struct {
	Entity *Entity
	// Open opens the sink for one run. Defaults to OpenSink, the sink in
	// the entity's configuration.
	Open func(ctx context.Context, e *Entity) (Sink, error)
	// BatchSize is how many records one Write gets. Defaults to the sink's
	// batchSize, then BatchSizeDefault.
	BatchSize int
}

type importParams struct {
	Format        string            `json:"format"`
	Delimiter     string            `json:"delimiter"`
	Encoding      string            `json:"encoding"`
	Sheet         string            `json:"sheet"`
	ColumnMapping map[string]string `json:"columnMapping"`
	DryRun        bool              `json:"dryRun"`
	MaxErrors     int               `json:"maxErrors"`
	OnError       string            `json:"onError"`
}

type importCheckpoint struct {
	// Row is the number of the last row committed to the sink.
	Row int `json:"row"`
	// SinkRejected counts the records the sink refused up to Row.
	SinkRejected int64 `json:"sinkRejected"`
}

// reportEvery is how many rows pass between two progress reports.
const reportEvery = 5000

func invalidParams(format string, args ...any) error {
	return worker.Permanent(commonops.Errorf(commonops.EINVALID, format, args...))
}

func (p *importParams) parse(raw json.RawMessage) (tabular.Options, error) {
	var o tabular.Options
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, p); err != nil {
			return o, invalidParams("params: %v", err)
		}
	}
	if p.Format != "" {
		f, err := tabular.ParseFormat(p.Format)
		if err != nil {
			return o, invalidParams("params.format: %v", err)
		}
		o.Format = f
	}
	switch p.Delimiter {
	case "":
	case `\t`, "tab":
		o.Delimiter = '\t'
	default:
		r, n := utf8.DecodeRuneInString(p.Delimiter)
		if n != len(p.Delimiter) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
			return o, invalidParams("params.delimiter: %q is not one character other than a quote or a line break", p.Delimiter)
		}
		o.Delimiter = r
	}
	switch p.OnError {
	case "", "skip", "abort":
	default:
		return o, invalidParams("params.onError: %q (want skip or abort)", p.OnError)
	}
	if p.MaxErrors < 0 {
		return o, invalidParams("params.maxErrors: must be 0 (no limit) or more")
	}
	o.Encoding, o.Sheet = p.Encoding, p.Sheet
	return o, nil
}

// Process runs one attempt of an import.
func (im *Importer) Process(ctx context.Context, job worker.Job) error {
	t := job.Task()
	var p importParams
	opts, err := p.parse(t.Params)
	if err != nil {
		return err
	}
	if t.FileName != nil {
		opts.FileName = *t.FileName
	}
	var cp importCheckpoint
	if len(t.Checkpoint) > 0 && string(t.Checkpoint) != "null" {
		if err := json.Unmarshal(t.Checkpoint, &cp); err != nil {
			return worker.Permanent(fmt.Errorf("import %s: checkpoint %s: %w", t.ID, t.Checkpoint, err))
		}
	}
	in, err := job.Input(ctx)
	if err != nil {
		return fmt.Errorf("import %s: open input: %w", t.ID, err)
	}
	defer in.Close()
	cr := &countingReader{r: in}
	rd, err := tabular.Open(cr, opts)
	if err != nil {
		return im.readError(t, cr, err)
	}
	defer rd.Close()

	run := &importRun{im: im, job: job, p: p, cp: cp, rd: rd, cr: cr}
	if t.FileSize != nil {
		run.size = *t.FileSize
	}
	if err := run.plan(); err != nil {
		return err
	}
	if !p.DryRun {
		open := im.Open
		if open == nil {
			open = OpenSink
		}
		if run.sink, err = open(ctx, im.Entity); err != nil {
			return fmt.Errorf("import %s: open sink: %w", t.ID, err)
		}
		defer run.sink.Close()
	}
	if cp.Row > 0 {
		job.Log(commonops.LogInfo, fmt.Sprintf("resuming after row %d, committed by an earlier attempt", cp.Row), cp)
	}
	err = run.loop(ctx)
	if cerr := run.closeErrors(); err == nil && cerr != nil {
		err = fmt.Errorf("import %s: write errors.csv: %w", t.ID, cerr)
	}
	if err != nil {
		run.report(false)
		return err
	}
	run.report(true)
	return nil
}

// errStopped marks the errors that end an import on purpose (abort,
// maxErrors).
var errStopped = errors.New("import stopped")

// readError tells a file that is wrong (fail the task for good) from an
// input stream that broke (retry the attempt).
func (im *Importer) readError(t *commonops.Task, cr *countingReader, err error) error {
	if cr.err != nil && !errors.Is(cr.err, io.EOF) && errors.Is(err, cr.err) {
		return fmt.Errorf("import %s: read input: %w", t.ID, err)
	}
	return worker.Permanent(commonops.Errorf(commonops.EINVALID, "the file cannot be read: %v", err))
}

type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// colPlan says where a file column goes.
type colPlan struct {
	idx   int
	name  string
	field Field
}

type pending struct {
	num   int
	cells []string
	raw   string
}

type importRun struct {
	im   *Importer
	job  worker.Job
	p    importParams
	cp   importCheckpoint
	rd   tabular.Reader
	cr   *countingReader
	size int64
	sink Sink

	cols    []colPlan
	header  []string
	errs    io.WriteCloser
	errsCSV *csv.Writer
	errBuf  []string

	rows      int64 // rows read
	good      int64 // valid rows
	bad       int64 // invalid rows
	committed int64 // valid rows stored (or, in a dry run, validated)
	rejected  int64 // records the sink refused

	batch    []Record
	batchRow []pending
}

// plan maps the header to schema properties and refuses a file that lacks a
// required column.
func (r *importRun) plan() error {
	e := r.im.Entity
	r.header = r.rd.Header()
	if r.rd.Format() == tabular.JSONL {
		return nil
	}
	var ignored []string
	have := map[string]bool{}
	for i, h := range r.header {
		name := h
		if m, ok := r.p.ColumnMapping[h]; ok {
			name = m
		}
		f, known := e.Fields[name]
		if name == "" || !known && len(e.Fields) > 0 {
			if h != "" {
				ignored = append(ignored, h)
			}
			continue
		}
		if have[name] {
			return invalidParams("the file has two columns for %s (check params.columnMapping)", name)
		}
		have[name] = true
		r.cols = append(r.cols, colPlan{idx: i, name: name, field: f})
	}
	var missing []string
	for _, req := range slices.Concat(e.Required, e.Key) {
		if !have[req] && !slices.Contains(missing, req) {
			missing = append(missing, req)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the file lacks the column(s) %s; its header is %s", strings.Join(missing, ", "), quoteCell(strings.Join(r.header, ",")))
		if len(r.header) == 1 && strings.ContainsAny(r.header[0], ";\t|,") {
			msg += " (one column only: is params.delimiter right?)"
		}
		return worker.Permanent(commonops.Errorf(commonops.EINVALID, "%s", msg))
	}
	if len(ignored) > 0 {
		r.job.Log(commonops.LogWarn, "columns not in the "+e.Name+" schema are ignored: "+strings.Join(ignored, ", "), nil)
	}
	return nil
}

func (r *importRun) loop(ctx context.Context) error {
	for {
		row, err := r.rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return r.im.readError(r.job.Task(), r.cr, err)
		}
		r.rows++
		if r.rows%reportEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			r.report(false)
		}
		rec, msg := r.record(row)
		if msg != "" {
			if err := r.reject(row.Num, row.Cells, row.Raw, msg); err != nil {
				return err
			}
			continue
		}
		r.good++
		if r.p.DryRun || row.Num <= r.cp.Row {
			r.committed++ // validated only, or stored by an earlier attempt
			continue
		}
		r.batch = append(r.batch, rec)
		r.batchRow = append(r.batchRow, pending{num: row.Num, cells: slices.Clone(row.Cells), raw: row.Raw})
		if len(r.batch) >= r.batchSize() {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
	}
	return r.flush(ctx)
}

func (r *importRun) batchSize() int {
	switch {
	case r.im.BatchSize > 0:
		return r.im.BatchSize
	case r.im.Entity.Sink != nil && r.im.Entity.Sink.BatchSize > 0:
		return r.im.Entity.Sink.BatchSize
	}
	return BatchSizeDefault
}

// record turns a row into a valid record, or says what is wrong with it.
func (r *importRun) record(row tabular.Row) (Record, string) {
	prefix := "row " + strconv.Itoa(row.Num)
	if row.Err != nil {
		return nil, prefix + ": " + row.Err.Error()
	}
	var rec Record
	if row.Record != nil {
		rec = row.Record
		for from, to := range r.p.ColumnMapping {
			if v, ok := rec[from]; ok && from != to {
				delete(rec, from)
				if to != "" {
					rec[to] = v
				}
			}
		}
	} else {
		rec = make(Record, len(r.cols))
		for _, c := range r.cols {
			v, ok, err := c.field.Coerce(row.Cells[c.idx])
			if err != nil {
				return nil, prefix + ", column " + c.name + ": " + err.Error()
			}
			if ok {
				rec[c.name] = v
			}
		}
	}
	if msg := r.im.Entity.Validate(rec); msg != "" {
		return nil, prefix + ": " + msg
	}
	return rec, ""
}

// flush sends the batch, records what the sink refused and checkpoints.
func (r *importRun) flush(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	recErrs, err := r.sink.Write(ctx, r.batch)
	if err != nil {
		return fmt.Errorf("import %s: rows %d to %d: %w", r.job.Task().ID, r.batchRow[0].num, r.batchRow[len(r.batchRow)-1].num, err)
	}
	r.committed += int64(len(r.batch))
	r.rejected += int64(len(recErrs))
	last := r.batchRow[len(r.batchRow)-1].num
	slices.SortFunc(recErrs, func(a, b RecordError) int { return a.Index - b.Index })
	for _, re := range recErrs {
		pr := r.batchRow[re.Index]
		if err := r.writeError(pr.num, pr.cells, pr.raw, fmt.Sprintf("row %d: refused by the sink: %s", pr.num, re.Message)); err != nil {
			return err
		}
	}
	r.batch, r.batchRow = r.batch[:0], r.batchRow[:0]
	r.cp.Row = last
	r.cp.SinkRejected += int64(len(recErrs))
	if err := r.job.Checkpoint(ctx, r.cp, r.update(false)); err != nil {
		return fmt.Errorf("import %s: checkpoint row %d: %w", r.job.Task().ID, last, err)
	}
	return r.checkLimits("")
}

// reject records a bad row and stops the import when the options say so.
func (r *importRun) reject(num int, cells []string, raw, msg string) error {
	r.bad++
	if err := r.writeError(num, cells, raw, msg); err != nil {
		return err
	}
	return r.checkLimits(msg)
}

func (r *importRun) checkLimits(msg string) error {
	failed := r.bad + r.rejected
	if msg != "" && r.p.OnError == "abort" {
		return worker.Permanent(fmt.Errorf("%w: %w", errStopped, commonops.Errorf(commonops.EINVALID, "stopped at the first bad row (onError=abort): %s", msg)))
	}
	if r.p.MaxErrors > 0 && failed >= int64(r.p.MaxErrors) {
		return worker.Permanent(fmt.Errorf("%w: %w", errStopped, commonops.Errorf(commonops.EINVALID, "stopped after %d bad rows (maxErrors=%d); see errors.csv", failed, r.p.MaxErrors)))
	}
	return nil
}

// writeError adds a row to errors.csv, opening it on the first bad row.
func (r *importRun) writeError(num int, cells []string, raw, msg string) error {
	if r.errs == nil {
		w, err := r.job.Errors(context.Background())
		if err != nil {
			return fmt.Errorf("import %s: open errors.csv: %w", r.job.Task().ID, err)
		}
		r.errs, r.errsCSV = w, csv.NewWriter(w)
		head := []string{"row"}
		if r.header != nil {
			head = append(head, r.header...)
		} else {
			head = append(head, "record")
		}
		if err := r.errsCSV.Write(append(head, "error")); err != nil {
			return fmt.Errorf("import %s: write errors.csv: %w", r.job.Task().ID, err)
		}
	}
	r.errBuf = append(r.errBuf[:0], strconv.Itoa(num))
	if r.header != nil {
		for i := range r.header {
			c := ""
			if i < len(cells) {
				c = strings.ToValidUTF8(cells[i], "\uFFFD")
			}
			r.errBuf = append(r.errBuf, c)
		}
	} else {
		r.errBuf = append(r.errBuf, raw)
	}
	r.errBuf = append(r.errBuf, strings.ToValidUTF8(msg, "\uFFFD"))
	if err := r.errsCSV.Write(r.errBuf); err != nil {
		return fmt.Errorf("import %s: write errors.csv: %w", r.job.Task().ID, err)
	}
	return nil
}

func (r *importRun) closeErrors() error {
	if r.errs == nil {
		return nil
	}
	r.errsCSV.Flush()
	err := r.errsCSV.Error()
	if cerr := r.errs.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *importRun) update(done bool) worker.Update {
	processed := r.good + r.bad
	success := r.committed - r.rejected
	failed := r.bad + r.rejected
	u := worker.Update{ProcessedItems: &processed, SuccessItems: &success, FailedItems: &failed}
	if done {
		total := r.rows
		progress := 100.0
		msg := fmt.Sprintf("imported %d of %d rows; %d failed", success, total, failed)
		if r.p.DryRun {
			msg = fmt.Sprintf("dry run: %d of %d rows are valid, %d are not; nothing was imported", success, total, failed)
		}
		u.TotalItems, u.Progress, u.Message = &total, &progress, &msg
	} else if r.size > 0 {
		progress := min(99, float64(r.cr.n)*100/float64(r.size))
		u.Progress = &progress
	}
	return u
}

func (r *importRun) report(done bool) { r.job.Report(r.update(done)) }
