package bulk

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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
// The entity's Limits bound every row the reader takes and errors.csv; a
// file that breaks one fails the task for good, naming the setting.
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
	// BatchSize is the most records one Write gets. Defaults to the sink's
	// batchSize, then SQLBatchSizeDefault for an sql sink and
	// BatchSizeDefault for others.
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
	Results       bool              `json:"results"`
}

type importCheckpoint struct {
	// Row is the number of the last row committed to the sink.
	Row int `json:"row"`
	// SinkRejected counts the records the sink refused up to Row.
	SinkRejected int64 `json:"sinkRejected"`
	// ResultParts is how many parts of the results are stored, up to Row.
	ResultParts int `json:"resultParts,omitempty"`
}

func invalidParams(format string, args ...any) error {
	return worker.Permanent(commonops.Errorf(commonops.EINVALID, format, args...))
}

func (p *importParams) parse(raw json.RawMessage) (tabular.Options, error) {
	var o tabular.Options
	var fe problems
	if params, ok := decodeParams(&fe, raw); ok {
		checkImportOptions(&fe, params)
	}
	if len(fe) > 0 {
		return o, invalidParams("%s: %s", fe[0].Field, fe[0].Message)
	}
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
	d, err := parseDelimiter(p.Delimiter)
	if err != nil {
		return o, invalidParams("params.delimiter: %v", err)
	}
	o.Delimiter = d
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
	limits := im.Entity.Limits.WithDefaults()
	opts.Limits = limits.Limits
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

	run := &importRun{im: im, job: job, p: p, cp: cp, rd: rd, cr: cr, limits: limits, rejected: cp.SinkRejected, opts: opts}
	run.spare, run.spareCells = make(chan Record, run.batchSize()), make(chan []string, run.batchSize())
	run.meter = newMeter(time.Now(), inputSize(t, in, rd), declaredRows(rd))
	if cp.Row > 0 {
		// The counts the task holds stay the floor while this attempt
		// counts again the rows an earlier one read: they never go back.
		run.floor = counts{t.Progress, t.ProcessedItems, t.SuccessItems, t.FailedItems}
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
		if _, ok := run.sink.(OutcomeSink); p.Results && !ok {
			return invalidParams("params.results: the sink of %s cannot tell a created record from an updated one", im.Entity.Name)
		}
		if ls, ok := run.sink.(lineSink); ok && rd.Format() != tabular.JSONL {
			for _, name := range ls.columns() {
				run.lineAt = append(run.lineAt, slices.IndexFunc(run.cols, func(c colPlan) bool { return c.name == name }))
			}
		}
	}
	if cp.Row > 0 {
		job.Log(commonops.LogInfo, fmt.Sprintf("resuming after row %d, committed by an earlier attempt", cp.Row), cp)
	}
	run.report(false) // an XLSX sheet's declared rows are known before the first
	err = run.loop(ctx)
	if cerr := run.closeErrors(); err == nil && cerr != nil {
		err = fmt.Errorf("import %s: write errors.csv: %w", t.ID, cerr)
	}
	if err != nil {
		if p.Results && run.stopped(ctx, err) {
			if ferr := run.finishStopped(context.WithoutCancel(ctx)); ferr != nil {
				job.Log(commonops.LogError, "the results and unprocessed files are incomplete: "+ferr.Error(), nil)
			}
		}
		run.report(false)
		return err
	}
	if p.Results {
		if err := run.writePart(ctx, math.MaxInt); err != nil {
			return err
		}
		if err := run.joinResults(ctx); err != nil {
			return err
		}
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
	if le, ok := errors.AsType[*tabular.LimitError](err); ok {
		return worker.Permanent(commonops.Errorf(commonops.EINVALID, "the file cannot be read: %s (import.%s)", le.Msg, le.Setting))
	}
	return worker.Permanent(commonops.Errorf(commonops.EINVALID, "the file cannot be read: %v", err))
}

// inputSize is the input's size in bytes, for the fraction read: the task's
// fileSize, else the input's own (a file), else 0 (unknown). An XLSX
// workbook is spooled whole before its first row, so its bytes say nothing
// of the rows read: 0.
func inputSize(t *commonops.Task, in io.Reader, rd tabular.Reader) int64 {
	if rd.Format() == tabular.XLSX {
		return 0
	}
	if t.FileSize != nil && *t.FileSize > 0 {
		return *t.FileSize
	}
	if f, ok := in.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return 0
}

// declaredRows is the rows the file declares (an XLSX sheet's dimension),
// or 0.
func declaredRows(rd tabular.Reader) int64 {
	if c, ok := rd.(tabular.Counter); ok {
		if n, ok := c.DeclaredRows(); ok {
			return n
		}
	}
	return 0
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
	// fast checks the column's values when the whole row can be checked
	// column by column (importRun.fastCols); required says the schema
	// requires the property.
	fast     *fastProp
	required bool
}

type pending struct {
	num   int
	cells []string
	raw   string
}

type importRun struct {
	im     *Importer
	job    worker.Job
	p      importParams
	cp     importCheckpoint
	rd     tabular.Reader
	cr     *countingReader
	meter  *meter
	floor  counts // the task's counts when this attempt resumed
	sink   Sink
	limits Limits // with defaults
	opts   tabular.Options

	results []resultLine // lines of the rows taken since the last part
	outcome []Outcome    // of the batch being stored

	cols    []colPlan
	header  []string
	errs    io.WriteCloser
	errsCSV *csv.Writer
	errBuf  []string
	errSize int64 // bytes of errors.csv so far (as CSV, before buffering)
	errLeft int64 // bad rows counted but not written, past MaxErrorsBytes

	readBytes int64 // input bytes read, as of the last row taken
	rows      int64 // rows read
	good      int64 // valid rows
	bad       int64 // invalid rows
	committed int64 // valid rows stored (or, in a dry run, validated)
	rejected  int64 // records the sink refused

	// fastCols: record checks the rows column by column (planFastChecks);
	// requiredCols is how many of them the schema requires.
	fastCols     bool
	requiredCols int

	batch      []Record
	lineBatch  [][]byte // instead of batch, when lineAt is set
	batchRow   []pending
	writing    *sinkWrite // the batch the sink is storing, if any
	batchBytes int64      // input bytes of the rows in batch

	// spare and spareCells hold the records and cells of stored batches,
	// for the reader to fill again: a record and a slice of cells per row
	// would be most of an import's garbage.
	spare      chan Record
	spareCells chan []string

	// lineAt is set when the sink takes CSV and XLSX rows as lines of
	// COPY text (lineSink), which spares a map and boxed values a row:
	// lineAt[j] is the column (of cols) of the sink's column j, -1 for
	// none.
	lineAt []int
}

// counts are the figures of a task that must not go back within an attempt
// (and progress, which a person would not want to see go back).
type counts struct {
	progress                   float64
	processed, success, failed int64
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
	r.planFastChecks()
	return nil
}

// planFastChecks lets record check each value against its column's
// property as it coerces it, when the entity's schema has a fast form
// (fastSchema) and every column and required property is in it: a row is
// then valid when each of its values is and it has every required column,
// without the map walk of Entity.Validate. Any other row still goes
// through Entity.Validate, which also says what is wrong.
func (r *importRun) planFastChecks() {
	fs := r.im.Entity.fast
	if fs == nil {
		return
	}
	for i := range r.cols {
		c := &r.cols[i]
		if c.fast = fs.props[c.name]; c.fast == nil && !fs.additional {
			return
		}
		if c.required = slices.Contains(fs.required, c.name); c.required {
			r.requiredCols++
		}
	}
	r.fastCols = r.requiredCols == len(fs.required)
}

// readChunk is how many rows the reading goroutine hands over at a time,
// and chunkBytes the most input bytes a chunk holds (past it the chunk goes
// early). With the most input bytes of a batch (batchBytes: 8 MiB, or
// SQLBatchBytes for an sql sink) they bound the rows in flight however long
// each is: a few chunks and two batches (one stored while the next fills).
const (
	readChunk  = 256
	chunkBytes = 4 << 20
	batchBytes = 8 << 20
)

// readRow is one row as the reading goroutine leaves it: a valid record to
// send, or the message that says what is wrong with it.
type readRow struct {
	num   int
	cells []string // set for rows that are sent or rejected
	raw   string
	rec   Record // nil unless the row is to be sent as a record
	line  []byte // or as a line of COPY text (lineAt)
	msg   string
	read  int64  // input bytes read when the row was
	size  int64  // bytes of the row's cells or source line
	fresh bool   // past the checkpoint: its results line is this attempt's
	key   string // the row's key, for the results
}

// readChunkOf is rows in file order, then err (io.EOF at the end) if the
// reader stopped.
type readChunkOf struct {
	rows []readRow
	err  error
}

// parsedChunk is rows as the parser read them (their cells copied out of
// the parser's buffers) with what the parser knew of each, for a checker
// to turn into out; ready closes once it has.
type parsedChunk struct {
	rows  []tabular.Row
	at    []rowAt
	out   readChunkOf
	ready chan struct{}
}

// lineBytes is about the room the chunk's rows take as COPY text: their
// bytes and a separator a cell, and a few more for escapes.
func (pc *parsedChunk) lineBytes() int {
	n := 0
	for i, a := range pc.at {
		n += int(a.size) + len(pc.rows[i].Cells) + 8
	}
	return n
}

// rowAt is what the parser knew of a row: the input bytes read when it was,
// and its own bytes (its cells or source line).
type rowAt struct{ read, size int64 }

// maxCheckers bounds the goroutines that coerce and validate rows: most
// of a row's cost (twice its parsing), and independent from row to row.
const maxCheckers = 4

// loop reads rows in one goroutine, coerces and validates them in
// checkers more, a chunk each at a time, while this one counts them in
// file order, writes errors.csv and sends batches to the sink, so reading
// goes on while the sink works. Every effect keeps the order of the file:
// the chunks reach this goroutine in the order they were read, each once
// its checker is done.
func (r *importRun) loop(ctx context.Context) (err error) {
	inFlight := min(32, max(2, r.batchSize()/readChunk+1))
	ordered := make(chan *parsedChunk, inFlight)
	work := make(chan *parsedChunk, inFlight)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	resume := r.cp.Row // the checkpoint moves on in this goroutine only
	wg.Go(func() { r.read(ordered, work, stop) })
	for range min(runtime.GOMAXPROCS(0), maxCheckers) {
		wg.Go(func() {
			var scratch checkScratch
			for pc := range work {
				select {
				case <-stop: // the loop has returned: nobody reads the rows
				default:
					pc.out.rows = r.check(pc, resume, &scratch)
				}
				pc.rows, pc.at = nil, nil // the checked rows are what is kept
				close(pc.ready)
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		if r.writing != nil {
			// Stopped early (an abort, a broken input, a cancel): the
			// batch being stored still counts, with its refusals and its
			// checkpoint, before the sink is closed. The stop's own error
			// is the one to report.
			if serr := r.settle(context.WithoutCancel(ctx)); err == nil {
				err = serr
			}
		}
	}()
	for pc := range ordered {
		<-pc.ready
		ch := pc.out
		for i := range ch.rows {
			if err := r.take(ctx, &ch.rows[i]); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.meter.due(time.Now(), r.readBytes, r.rows) {
			r.report(false)
		}
		if ch.err == io.EOF {
			break
		}
		if ch.err != nil {
			return r.im.readError(r.job.Task(), r.cr, ch.err)
		}
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	return r.settle(ctx)
}

// read is the parsing goroutine: it hands rows over in chunks, to the
// checkers through work and to loop through ordered, until the file ends,
// reading fails or stop is closed; then it closes both.
func (r *importRun) read(ordered, work chan<- *parsedChunk, stop <-chan struct{}) {
	defer close(ordered)
	defer close(work)
	newChunk := func() *parsedChunk {
		return &parsedChunk{rows: make([]tabular.Row, 0, readChunk), at: make([]rowAt, 0, readChunk), ready: make(chan struct{})}
	}
	hand := func(pc *parsedChunk) bool {
		select { // an abort stops the reading before the next chunk
		case <-stop:
			return false
		default:
		}
		for _, ch := range []chan<- *parsedChunk{ordered, work} {
			select {
			case ch <- pc:
			case <-stop:
				return false
			}
		}
		return true
	}
	pc := newChunk()
	var cells []string // the chunk's cells, one array for all its rows
	var quoted []bool
	var size int64 // of the rows in the chunk
	for {
		row, err := r.rd.Next()
		if err != nil {
			pc.out.err = err
			hand(pc)
			return
		}
		// The parser reuses the slices of a row for the next one.
		if cells == nil {
			cells, quoted = make([]string, 0, readChunk*len(row.Cells)), make([]bool, 0, readChunk*len(row.Quoted))
		}
		at := len(cells)
		cells = append(cells, row.Cells...)
		row.Cells = cells[at:len(cells):len(cells)]
		if row.Quoted != nil {
			at := len(quoted)
			quoted = append(quoted, row.Quoted...)
			row.Quoted = quoted[at:len(quoted):len(quoted)]
		}
		rowSize := int64(len(row.Raw))
		for _, c := range row.Cells {
			rowSize += int64(len(c))
		}
		pc.rows, pc.at = append(pc.rows, row), append(pc.at, rowAt{read: r.cr.n, size: rowSize})
		if size += rowSize; len(pc.rows) == readChunk || size >= chunkBytes {
			if !hand(pc) {
				return
			}
			pc, cells, quoted, size = newChunk(), nil, nil, 0
		}
	}
}

// check coerces and validates the rows of pc into readRows. Rows up to
// resume were committed by an earlier attempt: they are checked again but
// not sent. scratch is the checker's own: the record and values of rows
// that are validated only.
func (r *importRun) check(pc *parsedChunk, resume int, scratch *checkScratch) []readRow {
	out := make([]readRow, 0, len(pc.rows))
	if scratch.vals == nil {
		scratch.rec, scratch.vals = make(Record, len(r.cols)), make([]coerced, len(r.cols))
	}
	var lines []byte // the chunk's lines, one array for all its rows
	for i, row := range pc.rows {
		send := !r.p.DryRun && row.Num > resume
		rr := readRow{num: row.Num, read: pc.at[i].read, size: pc.at[i].size, fresh: row.Num > resume}
		switch {
		case send && r.lineAt != nil && row.Err == nil && row.Record == nil:
			valid, msg := r.coerceRow(row, scratch.vals)
			if msg == "" && !valid {
				_, msg = r.validate(row.Num, r.recordOf(scratch.vals, scratch.rec))
			}
			if rr.msg = msg; msg == "" {
				if lines == nil {
					lines = make([]byte, 0, pc.lineBytes())
				}
				at := len(lines)
				lines = r.appendLine(lines, scratch.vals)
				rr.line = lines[at:len(lines):len(lines)]
			}
		case send:
			var into Record
			select {
			case into = <-r.spare: // a stored record, filled again by record
			default:
			}
			rr.rec, rr.msg = r.record(row, into, scratch.vals)
		case !r.valid(row, scratch.vals):
			_, rr.msg = r.record(row, scratch.rec, scratch.vals)
		}
		if r.p.Results && rr.fresh {
			rr.key = r.keyOf(row)
		}
		if rr.msg != "" || send {
			// Only errors.csv reads them: keep no more than it writes.
			var buf []string
			if send {
				select {
				case buf = <-r.spareCells:
				default:
				}
			}
			rr.cells = cutCells(buf, row.Cells, r.limits.MaxErrorRowBytes)
			rr.raw = cutCell(row.Raw, r.limits.MaxErrorRowBytes)
		}
		out = append(out, rr)
	}
	return out
}

// checkScratch is a checker's record and values for the rows it validates
// only.
type checkScratch struct {
	rec  Record
	vals []coerced
}

// take counts one row, rejects it or adds it to the batch.
func (r *importRun) take(ctx context.Context, row *readRow) error {
	r.rows++
	r.readBytes = row.read
	if row.msg != "" {
		r.noteResult(row)
		return r.reject(ctx, row.num, row.cells, row.raw, row.msg)
	}
	r.good++
	switch {
	case row.line != nil:
		r.lineBatch = append(r.lineBatch, row.line)
	case row.rec != nil:
		r.batch = append(r.batch, row.rec)
	default:
		r.committed++ // validated only, or stored by an earlier attempt
		r.noteResult(row)
		return nil
	}
	r.batchRow = append(r.batchRow, pending{num: row.num, cells: row.cells, raw: row.raw})
	r.noteResult(row)
	if r.batchBytes += row.size; len(r.batchRow) >= r.batchSize() || r.batchBytes >= r.maxBatchBytes() {
		return r.flush(ctx)
	}
	return nil
}

// batchSize is the most records of a batch.
func (r *importRun) batchSize() int {
	sink := r.im.Entity.Sink
	switch {
	case r.im.BatchSize > 0:
		return r.im.BatchSize
	case sink != nil && sink.BatchSize > 0:
		return sink.BatchSize
	case sink != nil && sink.Type == "sql":
		return SQLBatchSizeDefault
	}
	return BatchSizeDefault
}

// maxBatchBytes is the most input bytes of a batch.
func (r *importRun) maxBatchBytes() int64 {
	if sink := r.im.Entity.Sink; sink != nil && sink.Type == "sql" {
		return SQLBatchBytes
	}
	return batchBytes
}

// record turns a row into a valid record, or says what is wrong with it.
// The record of a CSV or XLSX row goes in into (filled again) when into is
// not nil, its values coerced through vals (one per column; made when nil).
func (r *importRun) record(row tabular.Row, into Record, vals []coerced) (Record, string) {
	if row.Err != nil {
		return nil, rowPrefix(row.Num) + ": " + row.Err.Error()
	}
	if row.Record == nil {
		if vals == nil {
			vals = make([]coerced, len(r.cols))
		}
		valid, msg := r.coerceRow(row, vals)
		if msg != "" {
			return nil, msg
		}
		rec := r.recordOf(vals, into)
		if valid {
			return rec, ""
		}
		return r.validate(row.Num, rec)
	}
	rec := row.Record
	for from, to := range r.p.ColumnMapping {
		if v, ok := rec[from]; ok && from != to {
			delete(rec, from)
			if to != "" {
				rec[to] = v
			}
		}
	}
	return r.validate(row.Num, rec)
}

func rowPrefix(num int) string { return "row " + strconv.Itoa(num) }

// validate checks rec against the entity's schema.
func (r *importRun) validate(num int, rec Record) (Record, string) {
	if msg := r.im.Entity.Validate(rec); msg != "" {
		return nil, rowPrefix(num) + ": " + msg
	}
	return rec, ""
}

// coerceRow coerces the cells of a CSV or XLSX row into vals, a value a
// column (cAbsent for an empty cell its field does not take as null). It
// returns the message of the first cell that is not of its field's type,
// or whether the column checks found the row valid on their own
// (planFastChecks); false means the schema must say.
func (r *importRun) coerceRow(row tabular.Row, vals []coerced) (bool, string) {
	verdict, required := fastValid, 0
	for i := range r.cols {
		c := &r.cols[i]
		ok, err := r.cell(row, c, &vals[i])
		if err != nil {
			return false, rowPrefix(row.Num) + ", column " + c.name + ": " + err.Error()
		}
		if !ok {
			continue
		}
		if c.required {
			required++
		}
		if r.fastCols && c.fast != nil && verdict == fastValid {
			verdict = c.fast.checkCoerced(&vals[i])
		}
	}
	return r.fastCols && verdict == fastValid && required == r.requiredCols, ""
}

// recordOf is the record of a row's coerced values, filled into into when
// it is not nil. A record to fill again holds keys of these columns only:
// each is set or deleted, which costs less than clearing the map.
func (r *importRun) recordOf(vals []coerced, into Record) Record {
	rec := into
	if rec == nil {
		rec = make(Record, len(r.cols))
	}
	set := 0
	for i := range r.cols {
		if vals[i].kind == cAbsent {
			delete(rec, r.cols[i].name)
			continue
		}
		rec[r.cols[i].name] = vals[i].value()
		set++
	}
	if len(rec) != set { // a key of no column: a sink added it to a stored record
		fresh := make(Record, set)
		for _, c := range r.cols {
			if v, ok := rec[c.name]; ok {
				fresh[c.name] = v
			}
		}
		rec = fresh
	}
	return rec
}

// appendLine appends a row's coerced values to b as a line of COPY text,
// in the sink's column order (lineAt): what postgresSink.WriteOutcomes
// writes of the row's record.
func (r *importRun) appendLine(b []byte, vals []coerced) []byte {
	for j, k := range r.lineAt {
		if j > 0 {
			b = append(b, '\t')
		}
		if k < 0 {
			b = append(b, `\N`...)
			continue
		}
		switch v := &vals[k]; v.kind {
		case cString, cNumber:
			b = appendCopyText(b, v.s)
		case cInteger:
			b = strconv.AppendInt(b, v.n, 10)
		case cBoolean:
			b = strconv.AppendBool(b, v.b)
		default:
			if t, ok := v.text(); ok {
				b = appendCopyText(b, t)
			} else {
				b = append(b, `\N`...)
			}
		}
	}
	return append(b, '\n')
}

// cell coerces the value of column c in row to its field's type, into
// out; false when the cell is empty and the field not nullable (absent).
func (r *importRun) cell(row tabular.Row, c *colPlan, out *coerced) (bool, error) {
	cell := row.Cells[c.idx]
	if !r.im.Entity.KeepFormulas {
		cell = tabular.Unneutralize(cell) // the quote an export put before =, +, -, @
	}
	if cell == "" && row.Quoted != nil && row.Quoted[c.idx] && (c.field.Type == "string" || c.field.Type == "") {
		*out = coerced{kind: cString} // CSV "": the empty string, not NULL
		return true, nil
	}
	return c.field.coerceInto(cell, out)
}

// valid reports whether record would find the row valid, when the column
// checks can tell on their own, without building the record: a row that
// is only validated needs none. false means "ask record". vals is scratch.
func (r *importRun) valid(row tabular.Row, vals []coerced) bool {
	if !r.fastCols || row.Err != nil || row.Record != nil {
		return false
	}
	valid, _ := r.coerceRow(row, vals)
	return valid
}

// flush sends the batch to the sink. The sink stores it while the rows of
// the next batch are read and checked: flush first settles the batch sent
// before (settle), and hands this one to a goroutine of its own. With
// params.results (whose lines wait for their batch's outcomes) or
// maxErrors (which the sink's refusals count toward before the next batch
// goes) it stores and settles the batch before it returns.
func (r *importRun) flush(ctx context.Context) error {
	if len(r.batchRow) == 0 {
		return nil
	}
	if err := r.settle(ctx); err != nil {
		return err
	}
	w := &sinkWrite{batch: r.batch, lines: r.lineBatch, rows: r.batchRow, done: make(chan struct{})}
	r.batch, r.lineBatch, r.batchRow, r.batchBytes = nil, nil, nil, 0
	if r.p.Results {
		r.outcome = slices.Grow(r.outcome[:0], len(w.rows))[:len(w.rows)]
		clear(r.outcome)
		w.outcomes = r.outcome
	}
	r.writing = w
	if w.outcomes != nil || r.p.MaxErrors > 0 {
		w.write(ctx, r.sink)
		return r.settle(ctx)
	}
	go w.write(ctx, r.sink)
	return nil
}

// sinkWrite is a batch being stored.
type sinkWrite struct {
	batch    []Record
	lines    [][]byte // instead of batch, when lineAt is set
	rows     []pending
	outcomes []Outcome // nil unless params.results

	done    chan struct{} // closed once recErrs and err are set
	recErrs []RecordError
	err     error
}

func (w *sinkWrite) write(ctx context.Context, sink Sink) {
	defer close(w.done)
	switch {
	case w.lines != nil:
		w.recErrs, w.err = sink.(lineSink).writeLines(ctx, w.lines, w.outcomes)
	case w.outcomes != nil:
		w.recErrs, w.err = sink.(OutcomeSink).WriteOutcomes(ctx, w.batch, w.outcomes)
	default:
		w.recErrs, w.err = sink.Write(ctx, w.batch)
	}
}

// settle waits for the batch being stored, if any, then records what the
// sink refused, hands the batch's records and cells back for reuse and
// checkpoints after its last row.
func (r *importRun) settle(ctx context.Context) error {
	w := r.writing
	if w == nil {
		return nil
	}
	<-w.done
	r.writing = nil
	recErrs := w.recErrs
	if w.err != nil {
		return fmt.Errorf("import %s: rows %d to %d: %w", r.job.Task().ID, w.rows[0].num, w.rows[len(w.rows)-1].num, w.err)
	}
	r.committed += int64(len(w.rows))
	r.rejected += int64(len(recErrs))
	last := w.rows[len(w.rows)-1].num
	slices.SortFunc(recErrs, func(a, b RecordError) int { return a.Index - b.Index })
	for _, re := range recErrs {
		pr := w.rows[re.Index]
		if err := r.writeError(pr.num, pr.cells, pr.raw, fmt.Sprintf("row %d: refused by the sink: %s", pr.num, re.Message)); err != nil {
			return err
		}
	}
	for _, rec := range w.batch {
		select {
		case r.spare <- rec: // stored: the reader may reuse it
		default:
		}
	}
	for _, p := range w.rows {
		select {
		case r.spareCells <- p.cells:
		default:
		}
	}
	if w.outcomes != nil {
		r.settleResults(w.outcomes, recErrs)
		if err := r.writePart(ctx, last); err != nil {
			return err
		}
	}
	r.cp.Row = last
	r.cp.SinkRejected += int64(len(recErrs))
	if err := r.job.Checkpoint(ctx, r.cp, r.update(false)); err != nil {
		return fmt.Errorf("import %s: checkpoint row %d: %w", r.job.Task().ID, last, err)
	}
	return r.checkLimits("")
}

// reject records a bad row and stops the import when the options say so.
func (r *importRun) reject(ctx context.Context, num int, cells []string, raw, msg string) error {
	// errors.csv keeps the file's order: the sink's refusals of the batch
	// being stored, rows before this one, go first.
	if err := r.settle(ctx); err != nil {
		return err
	}
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
// Past MaxErrorsBytes the row is only counted, for the note closeErrors
// writes.
func (r *importRun) writeError(num int, cells []string, raw, msg string) error {
	if r.errLeft > 0 {
		r.errLeft++
		return nil
	}
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
		head = append(head, "error")
		r.errSize = csvSize(head)
		if err := r.errsCSV.Write(head); err != nil {
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
	r.errBuf = append(r.errBuf, strings.ToValidUTF8(cutCell(msg, r.limits.MaxErrorRowBytes), "\uFFFD"))
	n := csvSize(r.errBuf)
	if r.errSize+n > r.limits.MaxErrorsBytes {
		r.errLeft = 1
		return nil
	}
	r.errSize += n
	if err := r.errsCSV.Write(r.errBuf); err != nil {
		return fmt.Errorf("import %s: write errors.csv: %w", r.job.Task().ID, err)
	}
	return nil
}

// csvSize is how many bytes a CSV writer makes of rec, at most.
func csvSize(rec []string) int64 {
	n := int64(len(rec)) + 1 // separators and \r\n
	for _, f := range rec {
		n += int64(len(f)) + 2 + int64(strings.Count(f, `"`))
	}
	return n
}

// cutMark ends a cell that errors.csv keeps only the start of.
const cutMark = "…[cut]"

// cutCell returns s, or its first max bytes (whole runes) and cutMark,
// copied so that it holds no reference to s.
func cutCell(s string, max int64) string {
	if int64(len(s)) <= max {
		return s
	}
	i := int(max)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return strings.Clone(s[:i]) + cutMark
}

// cutCells copies cells into dst (reusing its array) so that it holds at most max bytes of them:
// the cell where the budget runs out is cut and marked, the later ones are
// left empty.
func cutCells(dst, cells []string, max int64) []string {
	out := append(dst[:0], cells...)
	left := max
	for i, c := range out {
		switch {
		case int64(len(c)) <= left:
			left -= int64(len(c))
		case left >= 0:
			out[i] = cutCell(c, left)
			left = -1
		default:
			out[i] = ""
		}
	}
	return out
}

func (r *importRun) closeErrors() error {
	if r.errs == nil {
		return nil
	}
	if r.errLeft > 0 {
		note := fmt.Sprintf("errors.csv stops here: %d more bad rows were counted but not written, past its %s limit (import.maxErrorsBytes)",
			r.errLeft, tabular.Size(r.limits.MaxErrorsBytes))
		row := make([]string, len(r.errBuf))
		row[len(row)-1] = note
		r.errsCSV.Write(row)
	}
	r.errsCSV.Flush()
	err := r.errsCSV.Error()
	if cerr := r.errs.Close(); err == nil {
		err = cerr
	}
	return err
}

// update is the report of the import so far. While it runs, totalItems is
// an estimate (flagged so) and progress stops at 99; done, both are exact.
func (r *importRun) update(done bool) worker.Update {
	processed := r.good + r.bad
	success := r.committed - r.rejected
	failed := r.bad + r.rejected
	u := worker.Update{ProcessedItems: &processed, SuccessItems: &success, FailedItems: &failed}
	if done {
		total := r.rows
		progress := 100.0
		estimated := false
		var eta int64
		msg := fmt.Sprintf("imported %d of %d rows; %d failed", success, total, failed)
		if r.p.DryRun {
			msg = fmt.Sprintf("dry run: %d of %d rows are valid, %d are not; nothing was imported", success, total, failed)
		}
		u.TotalItems, u.TotalItemsEstimated, u.EtaSeconds = &total, &estimated, &eta
		u.Progress, u.Message = &progress, &msg
		return u
	}
	processed, success, failed = max(processed, r.floor.processed), max(success, r.floor.success), max(failed, r.floor.failed)
	rd := r.meter.read(time.Now(), r.readBytes, r.rows)
	if rd.hasPct {
		progress := max(rd.progress, min(99, r.floor.progress))
		u.Progress = &progress
	}
	if rd.hasTotal {
		total, estimated := max(rd.total, processed), true
		u.TotalItems, u.TotalItemsEstimated = &total, &estimated
	}
	if rd.hasETA {
		u.EtaSeconds = &rd.eta
	}
	return u
}

func (r *importRun) report(done bool) { r.job.Report(r.update(done)) }
