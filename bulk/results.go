package bulk

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk/tabular"
	"github.com/commonops/commonops/worker"
)

// ResultsFile is the name of an import's results (params.results: true):
// a header, then one line per input row the import counted, in file order:
// its row (line) number, its key, its outcome (created, updated, unchanged,
// failed or skipped) and a message. The task's processedItems is its line
// count, successItems the created, updated and unchanged lines, failedItems
// the failed ones.
const ResultsFile = "results.csv"

// resultsHeader is the first line of ResultsFile.
var resultsHeader = []string{"row", "key", "outcome", "message"}

// The outcomes the importer decides itself.
const (
	outcomeFailed  = "failed"
	outcomeSkipped = "skipped"
)

// resultsParts is the directory of the parts results.csv is joined from:
// one per checkpoint, so a later attempt keeps what an earlier one stored
// (their outcomes cannot be told again once the rows are in the table).
const resultsParts = "parts"

func resultsPart(n int) string { return fmt.Sprintf("%s/results-%06d.csv", resultsParts, n) }

// resultLine is one row's line of the results, until its batch is stored.
type resultLine struct {
	num     int
	key     string
	outcome string
	msg     string
	batch   int // index in the batch of a row sent to the sink; -1 otherwise
}

// keyOf is the key of a row as the file gives it (the key columns' text,
// joined with commas), for the results.
func (r *importRun) keyOf(row tabular.Row) string {
	var parts []string
	for _, k := range r.im.Entity.Key {
		switch {
		case row.Record != nil:
			if v, ok := row.Record[k]; ok && v != nil {
				parts = append(parts, formatValue(v))
			} else {
				parts = append(parts, "")
			}
		default:
			v := ""
			for _, c := range r.cols {
				if c.name == k && c.idx < len(row.Cells) {
					v = row.Cells[c.idx]
				}
			}
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, ",")
}

// noteResult records the line of a row taken by this attempt.
func (r *importRun) noteResult(row *readRow) {
	if !r.p.Results || !row.fresh {
		return
	}
	l := resultLine{num: row.num, key: row.key, batch: -1}
	switch {
	case row.msg != "":
		l.outcome, l.msg = outcomeFailed, row.msg
	case row.rec != nil || row.line != nil:
		l.batch = len(r.batchRow) - 1
	default:
		l.outcome, l.msg = outcomeSkipped, "dry run: valid, nothing imported"
	}
	r.results = append(r.results, l)
}

// settleResults gives the lines of the batch just stored their outcome.
func (r *importRun) settleResults(outcomes []Outcome, recErrs []RecordError) {
	refused := make(map[int]string, len(recErrs))
	for _, re := range recErrs {
		refused[re.Index] = re.Message
	}
	for i := range r.results {
		l := &r.results[i]
		if l.batch < 0 {
			continue
		}
		switch msg, bad := refused[l.batch]; {
		case bad:
			l.outcome, l.msg = outcomeFailed, "refused by the sink: "+msg
		case outcomes[l.batch] == OutcomeNone:
			l.outcome, l.msg = OutcomeUpdated.String(), "a later row of the batch has the same key and replaced it"
		default:
			l.outcome = outcomes[l.batch].String()
		}
		l.batch = -1
	}
}

// writePart commits the lines of rows up to row as the next part of the
// results; later lines wait for the next part (a checkpoint at row covers
// no row after it).
func (r *importRun) writePart(ctx context.Context, row int) error {
	n := 0
	for n < len(r.results) && r.results[n].num <= row {
		n++
	}
	if !r.p.Results || n == 0 {
		return nil
	}
	w, err := r.job.File(ctx, resultsPart(r.cp.ResultParts+1), "text/csv")
	if err != nil {
		return fmt.Errorf("import %s: write results: %w", r.job.Task().ID, err)
	}
	cw := csv.NewWriter(w)
	for _, l := range r.results[:n] {
		cw.Write([]string{fmt.Sprint(l.num), l.key, l.outcome, l.msg})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		w.Close()
		return fmt.Errorf("import %s: write results: %w", r.job.Task().ID, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("import %s: write results: %w", r.job.Task().ID, err)
	}
	r.cp.ResultParts++
	r.results = append(r.results[:0], r.results[n:]...)
	return nil
}

// joinResults writes results.csv from its parts and deletes them.
func (r *importRun) joinResults(ctx context.Context) error {
	id := r.job.Task().ID
	w, err := r.job.File(ctx, ResultsFile, "text/csv")
	if err != nil {
		return fmt.Errorf("import %s: write results: %w", id, err)
	}
	cw := csv.NewWriter(w)
	cw.Write(resultsHeader)
	cw.Flush()
	for n := 1; n <= r.cp.ResultParts && cw.Error() == nil; n++ {
		var part io.ReadCloser
		if part, err = r.job.OpenFile(ctx, resultsPart(n)); err != nil {
			break
		}
		_, err = io.Copy(w, part)
		part.Close()
		if err != nil {
			break
		}
	}
	if err == nil {
		err = cw.Error()
	}
	if err != nil {
		w.Close()
		return fmt.Errorf("import %s: write results: %w", id, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("import %s: write results: %w", id, err)
	}
	if err := r.job.DeleteFiles(ctx, resultsParts); err != nil {
		return fmt.Errorf("import %s: delete results parts: %w", id, err)
	}
	return nil
}

// stopped reports whether err ends the import for good (a permanent error,
// a cancel, the last attempt failing): then the results are joined as they
// are and the rows past the last stored batch go to the unprocessed file.
// A lost lease or a shutdown is not: another attempt goes on.
func (r *importRun) stopped(ctx context.Context, err error) bool {
	t := r.job.Task()
	switch {
	case errors.Is(context.Cause(ctx), worker.ErrTaskCancelled):
		return true
	case ctx.Err() != nil:
		return false
	case worker.IsPermanent(err):
		return true
	}
	return t.RetryCount >= t.MaxRetries
}

// finishStopped writes, for an import that stops for good, the results of
// the rows it counted (the rows of a batch not stored are skipped) and the
// unprocessed rows.
func (r *importRun) finishStopped(ctx context.Context) error {
	for i := range r.results {
		if l := &r.results[i]; l.batch >= 0 {
			l.outcome, l.msg, l.batch = outcomeSkipped, "not imported: the import stopped before its batch was stored (see the unprocessed file)", -1
		}
	}
	if err := r.writePart(ctx, math.MaxInt); err != nil {
		return err
	}
	if err := r.joinResults(ctx); err != nil {
		return err
	}
	return r.writeUnprocessed(ctx)
}

// writeUnprocessed writes the rows after the last stored batch, as the
// input has them (its header, then its lines from that row's on), to
// operations.UnprocessedName's file: a CSV or JSON Lines file that can be
// imported again as is. An XLSX input gets a workbook of the same header
// and those rows' cells (writeUnprocessedXLSX).
func (r *importRun) writeUnprocessed(ctx context.Context) error {
	t := r.job.Task()
	format := r.rd.Format()
	if format == tabular.XLSX {
		return r.writeUnprocessedXLSX(ctx, unprocessedName(t))
	}
	start, err := r.firstAfter(ctx, r.cp.Row)
	if err != nil || start == 0 {
		return err
	}
	in, err := r.job.Input(ctx)
	if err != nil {
		return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	defer in.Close()
	w, err := r.job.File(ctx, unprocessedName(t), "application/octet-stream")
	if err != nil {
		return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	br := bufio.NewReaderSize(in, 64<<10)
	for line := 1; line < start; line++ {
		b, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			if line == 1 && format == tabular.CSV {
				w.Write(b)
			}
			b, err = br.ReadSlice('\n')
		}
		if line == 1 && format == tabular.CSV {
			w.Write(b) // the header
		}
		if err != nil {
			w.Close()
			return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
		}
	}
	if _, err := br.WriteTo(w); err != nil {
		w.Close()
		return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	return w.Close()
}

// writeUnprocessedXLSX writes the rows of an XLSX input after the last
// stored batch as a workbook: the input's header, then each row's cells as
// the reader gave them (text, as the import read them, formulas as they
// were), so that importing it gives what importing those rows of the
// input would have. Nothing is written when no row is left.
func (r *importRun) writeUnprocessedXLSX(ctx context.Context, name string) (err error) {
	t := r.job.Task()
	in, err := r.job.Input(ctx)
	if err != nil {
		return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	defer in.Close()
	rd, err := tabular.Open(in, r.opts)
	if err != nil {
		return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	defer rd.Close()
	var w io.WriteCloser
	var xw tabular.Writer
	defer func() {
		if w != nil && err != nil {
			w.Close()
		}
	}()
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
		}
		if row.Num <= r.cp.Row {
			continue
		}
		if xw == nil {
			if w, err = r.job.File(ctx, name, tabular.XLSX.ContentType()); err != nil {
				return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
			}
			if xw, err = tabular.NewWriter(w, tabular.XLSX, rd.Header(), tabular.WriteOptions{KeepFormulas: true}); err != nil {
				return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
			}
		}
		values := make([]any, len(row.Cells))
		for i, c := range row.Cells {
			values[i] = c
		}
		if err := xw.Write(values); err != nil {
			return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
		}
	}
	if xw == nil {
		return nil
	}
	if err := xw.Close(); err != nil {
		return fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	return w.Close()
}

// unprocessedName is the name of t's unprocessed file, as
// operations.UnprocessedName gives it: "unprocessed-" and the input's name.
func unprocessedName(t *commonops.Task) string {
	if t.FileName == nil {
		return "unprocessed"
	}
	return "unprocessed-" + *t.FileName
}

// firstAfter is the line the first row after row starts on, read from the
// input again; 0 when there is none.
func (r *importRun) firstAfter(ctx context.Context, row int) (int, error) {
	t := r.job.Task()
	in, err := r.job.Input(ctx)
	if err != nil {
		return 0, fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	defer in.Close()
	rd, err := tabular.Open(in, r.opts)
	if err != nil {
		return 0, fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
	}
	defer rd.Close()
	for {
		next, err := rd.Next()
		if err == io.EOF {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("import %s: write unprocessed: %w", t.ID, err)
		}
		if next.Num > row {
			return next.Num, nil
		}
	}
}
