package bulk

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/commonops/commonops"
)

// crashSink is an OutcomeSink whose Write number failAt fails as a
// database that went away does: the attempt ends, the task is retried.
type crashSink struct {
	OutcomeSink
	writes atomic.Int32
	failAt int32
}

func (s *crashSink) WriteOutcomes(ctx context.Context, batch []Record, out []Outcome) ([]RecordError, error) {
	if s.writes.Add(1) == s.failAt {
		return nil, unavailable("the database", fmt.Errorf("connection reset"))
	}
	return s.OutcomeSink.WriteOutcomes(ctx, batch, out)
}

// resultsSinks are the sql sinks the results tests run on, each with a
// handle on its table: batches of 3 rows.
func resultsSinks(t *testing.T) map[string]func(t *testing.T) (*Entity, func(q string, args ...any) *sql.Row) {
	return map[string]func(t *testing.T) (*Entity, func(q string, args ...any) *sql.Row){
		"sqlite": func(t *testing.T) (*Entity, func(q string, args ...any) *sql.Row) {
			im, db := sqliteImport(t)
			return im.Entity, db.QueryRow
		},
		"postgres": func(t *testing.T) (*Entity, func(q string, args ...any) *sql.Row) {
			dsn, _ := pgSchema(t)
			cfg := loadTestConfig(t, fmt.Sprintf("type: sql\ndriver: postgres\ndsn: %s\ntable: products\ncreateTable: true\nbatchSize: 3", dsn), "")
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return cfg.Entities["product"], db.QueryRow
		},
	}
}

// resultsFile reads results.csv: its lines after the header, and the
// count of each outcome.
func resultsFile(t *testing.T, j *fileJob) ([][]string, map[string]int64) {
	t.Helper()
	b := j.file(ResultsFile)
	if b == nil {
		t.Fatal("no results.csv")
	}
	rows, err := readCSV(b)
	if err != nil {
		t.Fatalf("results.csv: %v", err)
	}
	if len(rows) == 0 || !slices.Equal(rows[0], resultsHeader) {
		t.Fatalf("results.csv: got header %v, want %v", rows[:min(1, len(rows))], resultsHeader)
	}
	n := map[string]int64{}
	for _, r := range rows[1:] {
		n[r[2]]++
	}
	return rows[1:], n
}

// TestResultsAfterCrash imports a file whose third batch meets a database
// that went away, mid-file, then resumes it from its checkpoint: the
// results list every row once, in order, with its outcome (created,
// updated, unchanged, failed), and the task's counts match them exactly.
func TestResultsAfterCrash(t *testing.T) {
	t.Parallel()
	for name, open := range resultsSinks(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, query := open(t)
			ctx := context.Background()
			seed := newFileJob(t, "import", "product", "seed.csv", "sku,name,price\nK-1,Old,1\nK-2,Same,2\n", nil)
			if err := (&Importer{Entity: e}).Process(ctx, seed); err != nil {
				t.Fatalf("seed: %v", err)
			}
			var b strings.Builder
			b.WriteString("sku,name,price\n")
			want := map[int]string{} // line → outcome
			for i := 0; i < 14; i++ {
				line := i + 2
				switch {
				case i == 1:
					b.WriteString("K-1,New name,1\n")
					want[line] = "updated"
				case i == 9:
					b.WriteString("K-2,Same,2\n")
					want[line] = "unchanged"
				case i%4 == 3:
					fmt.Fprintf(&b, "N-%d,Bad,abc\n", i)
					want[line] = "failed"
				default:
					fmt.Fprintf(&b, "N-%d,Name %d,%d\n", i, i, i)
					want[line] = "created"
				}
			}
			job := newFileJob(t, "import", "product", "p.csv", b.String(), map[string]any{"results": true})
			job.task.MaxRetries = 3
			crash := &Importer{Entity: e, Open: func(ctx context.Context, e *Entity) (Sink, error) {
				s, err := OpenSink(ctx, e)
				if err != nil {
					return nil, err
				}
				return &crashSink{OutcomeSink: s.(OutcomeSink), failAt: 3}, nil
			}}
			if err := crash.Process(ctx, job); commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
				t.Fatalf("first attempt: got %v, want the sink's EUNAVAILABLE", err)
			}
			if job.file(ResultsFile) != nil {
				t.Fatal("a failed attempt that will be retried wrote results.csv")
			}
			again := job.retry()
			if err := (&Importer{Entity: e}).Process(ctx, again); err != nil {
				t.Fatalf("resumed attempt: %v", err)
			}
			rows, n := resultsFile(t, again)
			if len(rows) != len(want) {
				t.Fatalf("got %d result lines, want %d: %q", len(rows), len(want), rows)
			}
			for i, r := range rows {
				line, _ := strconv.Atoi(r[0])
				if line != i+2 || r[2] != want[line] {
					t.Errorf("result %d: got %q, want line %d %s", i, r, i+2, want[i+2])
				}
			}
			if rows[1][1] != "K-1" {
				t.Errorf("key of line 3: got %q, want K-1", rows[1][1])
			}
			c := again.counts()
			if c[1] != int64(len(rows)) || c[2] != n["created"]+n["updated"]+n["unchanged"] || c[3] != n["failed"] {
				t.Errorf("got counts %v (processed, success, failed at 1..3), want them to match results %v", c, n)
			}
			if again.file(resultsPart(1)) != nil {
				t.Error("the parts of results.csv are still there after the join")
			}
			var name string
			if err := query("SELECT name FROM products WHERE sku = 'K-1'").Scan(&name); err != nil || name != "New name" {
				t.Errorf("K-1: got %q (%v), want New name", name, err)
			}
		})
	}
}

// TestUnprocessedOnAbort stops an import at its first bad row
// (onError=abort) after two stored batches: the unprocessed file is the
// header and every line from the first row after the stored ones, byte
// for byte, and the results and counts stop where the import did.
func TestUnprocessedOnAbort(t *testing.T) {
	t.Parallel()
	for name, open := range resultsSinks(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, _ := open(t)
			head := "\ufeffsku,name,price\r\n"
			var lines []string
			for i := range 10 {
				price := strconv.Itoa(i)
				if i == 7 {
					price = "abc"
				}
				lines = append(lines, fmt.Sprintf("U-%d,\"Name\n%d\",%s\r\n", i, i, price))
			}
			job := newFileJob(t, "import", "product", "p.csv", head+strings.Join(lines, ""), map[string]any{"results": true, "onError": "abort"})
			if err := (&Importer{Entity: e}).Process(context.Background(), job); err == nil {
				t.Fatal("got nil, want the abort")
			}
			// Rows 0-5 are in two batches of 3; row 6 waits in the third,
			// row 7 aborts.
			if got, want := string(job.file("unprocessed-p.csv")), head+strings.Join(lines[6:], ""); got != want {
				t.Errorf("got unprocessed file %q, want %q", got, want)
			}
			rows, n := resultsFile(t, job)
			if len(rows) != 8 || n["created"] != 6 || n["skipped"] != 1 || n["failed"] != 1 {
				t.Errorf("got results %q, want 6 created, row 6 skipped, row 7 failed", rows)
			}
			if c := job.counts(); c[1] != 8 || c[2] != 6 || c[3] != 1 {
				t.Errorf("got counts %v, want 8 processed, 6 succeeded, 1 failed", c)
			}
		})
	}
}

// TestUnprocessedXLSXOnAbort: an XLSX import stopped at its first bad row
// leaves a workbook of the header and every row after the stored batches,
// which imports again as it is.
func TestUnprocessedXLSXOnAbort(t *testing.T) {
	t.Parallel()
	for name, open := range resultsSinks(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, _ := open(t)
			rows := [][]any{{"sku", "name", "price"}}
			for i := range 10 {
				var price any = i
				if i == 7 {
					price = "abc"
				}
				rows = append(rows, []any{fmt.Sprintf("U-%d", i), fmt.Sprintf("Name %d", i), price})
			}
			job := newFileJob(t, "import", "product", "p.xlsx", string(xlsxBytes(t, rows)), map[string]any{"results": true, "onError": "abort"})
			if err := (&Importer{Entity: e}).Process(context.Background(), job); err == nil {
				t.Fatal("got nil, want the abort")
			}
			b := job.file("unprocessed-p.xlsx")
			if b == nil {
				t.Fatal("no unprocessed-p.xlsx")
			}
			f, err := excelize.OpenReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("unprocessed-p.xlsx: %v", err)
			}
			got, err := f.GetRows(f.GetSheetName(0))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			// Rows 0-5 are in two stored batches of 3; row 6 waited in the
			// third, row 7 aborted.
			want := [][]string{{"sku", "name", "price"}, {"U-6", "Name 6", "6"}, {"U-7", "Name 7", "abc"}, {"U-8", "Name 8", "8"}, {"U-9", "Name 9", "9"}}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got unprocessed rows %q, want %q", got, want)
			}
			again := newFileJob(t, "import", "product", "unprocessed-p.xlsx", string(b), nil)
			if err := (&Importer{Entity: e}).Process(context.Background(), again); err != nil {
				t.Fatalf("import the unprocessed file: %v", err)
			}
			if c := again.counts(); c[1] != 4 || c[2] != 3 || c[3] != 1 {
				t.Errorf("import of the unprocessed file: got counts %v, want 4 processed, 3 succeeded, 1 failed", c)
			}
		})
	}
}
