package bulk

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/worker"
)

// sqliteImport returns an importer of the product entity into a fresh SQLite
// file, and a handle on that file.
func sqliteImport(t *testing.T) (*Importer, *sql.DB) {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "data", "products.db")
	cfg := loadTestConfig(t, fmt.Sprintf("type: sql\ndriver: sqlite\ndsn: %s\ntable: products\ncreateTable: true\nbatchSize: 3", dsn), "")
	db, err := openSQLite(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Importer{Entity: cfg.Entities["product"]}, db
}

func tableCount(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM products").Scan(&n); err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return 0
		}
		t.Fatal(err)
	}
	return n
}

const goodCSV = "sku,name,price,stock,active,releasedAt\n" +
	"A-1,Apple,1.5,10,true,2026-01-02\n" +
	"A-2,Banana,0.25,,false,\n" +
	"A-3,Cherry,3,7,yes,2026-03-04\n"

func TestImportCSVIntoSQLite(t *testing.T) {
	t.Parallel()
	im, db := sqliteImport(t)
	csv := goodCSV +
		"A-4,Durian,abc,1,true,\n" + // line 5: price is not a number
		"A-5,,2,1,true,\n" + // line 6: empty name is absent, and name is required
		"A-6,Elder,-1,1,true,\n" + // line 7: below the minimum
		"A-7,Fig,2,1.5,true,\n" + // line 8: stock is not an integer
		"A-8,Grape,2,1,true,2026-13-01\n" + // line 9: not a date
		"A-9,Kiwi,2,1,maybe,\n" // line 10: not a boolean
	job := newFileJob(t, "import", "product", "products.csv", csv, nil)
	if err := im.Process(context.Background(), job); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if got, want := job.counts(), [4]int64{9, 9, 3, 6}; got != want {
		t.Errorf("got counts (total, processed, success, failed) %v, want %v", got, want)
	}
	if got := tableCount(t, db); got != 3 {
		t.Errorf("got %d rows in the table, want 3", got)
	}
	var name string
	var price float64
	var active int
	if err := db.QueryRow("SELECT name, price, active FROM products WHERE sku = 'A-3'").Scan(&name, &price, &active); err != nil {
		t.Fatal(err)
	}
	if name != "Cherry" || price != 3 || active != 1 {
		t.Errorf("got A-3 = (%q, %v, %v), want (Cherry, 3, 1)", name, price, active)
	}
	rows := job.errorRows(t)
	wantHead := []string{"row", "sku", "name", "price", "stock", "active", "releasedAt", "error"}
	if len(rows) == 0 || !slices.Equal(rows[0], wantHead) {
		t.Fatalf("got errors.csv header %v, want %v", rows, wantHead)
	}
	want := []struct{ row, err string }{
		{"5", `row 5, column price: "abc" is not a number`},
		{"6", "row 6: missing name"},
		{"7", "row 7: column price: minimum: got -1, want 0"},
		{"8", `row 8, column stock: "1.5" is not an integer`},
		{"9", `row 9, column releasedAt: "2026-13-01" is not a date (YYYY-MM-DD)`},
		{"10", `row 10, column active: "maybe" is not a boolean (true/false, yes/no, 1/0)`},
	}
	if len(rows) != len(want)+1 {
		t.Fatalf("got %d error rows, want %d: %q", len(rows)-1, len(want), rows)
	}
	for i, w := range want {
		r := rows[i+1]
		if r[0] != w.row || r[len(r)-1] != w.err {
			t.Errorf("error row %d: got (%s, %q), want (%s, %q)", i, r[0], r[len(r)-1], w.row, w.err)
		}
	}
	if rows[1][1] != "A-4" || rows[1][3] != "abc" {
		t.Errorf("got original columns %q, want sku A-4 and price abc", rows[1])
	}
	if job.checkpoints == 0 {
		t.Errorf("got no checkpoint, want one per committed batch")
	}
}

func TestImportBadInput(t *testing.T) {
	t.Parallel()
	xlsx := xlsxBytes(t, [][]any{{"sku", "name", "price"}, {"X-1", "Xylophone", 12.5}, {"X-2", "Yoyo", 3}})
	big := strings.Repeat("x", 1<<20-64) // a row just under MaxRecordBytesDefault
	tests := []struct {
		name     string
		file     string
		content  string
		params   map[string]any
		wantErr  string // substring of a permanent error; "" for success
		wantRows int    // rows in the table after a success
		wantFail int64
		check    func(t *testing.T, job *fileJob)
	}{
		{name: "wrong delimiter", file: "p.csv", content: "sku;name;price\nA;B;1\n", wantErr: "is params.delimiter right?"},
		{name: "right delimiter", file: "p.csv", content: "sku;name;price\nA;B;1\n", params: map[string]any{"delimiter": ";"}, wantRows: 1},
		{name: "missing header columns", file: "p.csv", content: "sku,title\nA,B\n", wantErr: "lacks the column(s) name, price"},
		{name: "column mapping", file: "p.csv", content: "SKU,title,cost\nA,B,1\n",
			params: map[string]any{"columnMapping": map[string]string{"SKU": "sku", "title": "name", "cost": "price"}}, wantRows: 1},
		{name: "extra columns", file: "p.csv", content: "sku,name,price,colour\nA,B,1,red\n", wantRows: 1,
			check: func(t *testing.T, job *fileJob) {
				if !slices.ContainsFunc(job.logs, func(l string) bool { return strings.Contains(l, "ignored: colour") }) {
					t.Errorf("got logs %q, want a warning about colour", job.logs)
				}
			}},
		{name: "row with extra fields", file: "p.csv", content: "sku,name,price\nA,B,1,surplus\nC,D,2\n", wantRows: 1, wantFail: 1,
			check: func(t *testing.T, job *fileJob) {
				rows := job.errorRows(t)
				if len(rows) != 2 || rows[1][len(rows[1])-1] != "row 2: has 4 fields, the header has 3" {
					t.Errorf("got errors.csv %q, want row 2 with 4 fields", rows)
				}
			}},
		{name: "quote left open", file: "p.csv", content: "sku,name,price\nA,B,1\nC,\"D,2\nE,F,3\n", wantErr: "line 3"},
		{name: "invalid UTF-8", file: "p.csv", content: "sku,name,price\nA,B\xff\xfe,1\nC,D,2\n", wantRows: 1, wantFail: 1,
			check: func(t *testing.T, job *fileJob) {
				rows := job.errorRows(t)
				if len(rows) != 2 || !strings.Contains(rows[1][len(rows[1])-1], "column name: not valid UTF-8") {
					t.Errorf("got errors.csv %q, want row 2 not valid UTF-8", rows)
				}
			}},
		{name: "latin1 encoding", file: "p.csv", content: "sku,name,price\nA,Caf\xe9,1\n", params: map[string]any{"encoding": "latin1"}, wantRows: 1,
			check: func(t *testing.T, job *fileJob) {}},
		{name: "BOM", file: "p.csv", content: "\xEF\xBB\xBFsku,name,price\nA,B,1\n", wantRows: 1},
		{name: "empty file", file: "p.csv", content: "", wantErr: "the file is empty"},
		{name: "XLSX renamed to .csv", file: "p.csv", content: string(xlsx), wantRows: 2},
		{name: "not an XLSX", file: "p.xlsx", content: "sku,name,price\n", wantErr: "not an XLSX workbook"},
		{name: "one row, no final newline", file: "p.csv", content: "sku,name,price\nA,B,1", wantRows: 1},
		{name: "header only", file: "p.csv", content: "sku,name,price\n", wantRows: 0},
		{name: "a row of 1 MB", file: "p.csv", content: "sku,name,price,description\nA,B,1," + big + "\nC,D,2,short\n", wantRows: 2},
		{name: "a row over 1 MiB", file: "p.csv", content: "sku,name,price,description\nA,B,1," + big + big + "\n",
			wantErr: "row 2 is longer than the 1 MiB record limit (import.maxRecordBytes)"},
		{name: "JSON Lines", file: "p.jsonl", content: `{"sku":"J","name":"Jam","price":2}` + "\n\n" + `{"sku":"K","price":"x"}` + "\nnot json\n", wantRows: 1, wantFail: 2,
			check: func(t *testing.T, job *fileJob) {
				rows := job.errorRows(t)
				if len(rows) != 3 || rows[0][1] != "record" || rows[1][0] != "3" || rows[2][0] != "4" {
					t.Errorf("got errors.csv %q, want rows 3 and 4 with their records", rows)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			im, db := sqliteImport(t)
			job := newFileJob(t, "import", "product", tt.file, tt.content, tt.params)
			err := im.Process(context.Background(), job)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one with %q", err, tt.wantErr)
				}
				if !worker.IsPermanent(err) {
					t.Errorf("got a retryable error %v, want a permanent one (the file will not get better)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if got := tableCount(t, db); got != tt.wantRows {
				t.Errorf("got %d rows in the table, want %d", got, tt.wantRows)
			}
			if got := job.counts()[3]; got != tt.wantFail {
				t.Errorf("got failedItems %d, want %d", got, tt.wantFail)
			}
			if tt.check != nil {
				tt.check(t, job)
			}
		})
	}
}

func xlsxBytes(t testing.TB, rows [][]any) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Sheet1", cell, &r); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestImportOptions(t *testing.T) {
	t.Parallel()
	bad := goodCSV + "B-1,Bad,abc,,,\nB-2,Bad,abc,,,\nB-3,Bad,abc,,,\nC-1,Fine,1,,,\n"
	t.Run("dryRun", func(t *testing.T) {
		t.Parallel()
		im, db := sqliteImport(t)
		job := newFileJob(t, "import", "product", "p.csv", bad, map[string]any{"dryRun": true})
		if err := im.Process(context.Background(), job); err != nil {
			t.Fatal(err)
		}
		if got := tableCount(t, db); got != 0 {
			t.Errorf("got %d rows after a dry run, want 0", got)
		}
		if got, want := job.counts(), [4]int64{7, 7, 4, 3}; got != want {
			t.Errorf("got counts %v, want %v", got, want)
		}
	})
	t.Run("maxErrors", func(t *testing.T) {
		t.Parallel()
		im, _ := sqliteImport(t)
		job := newFileJob(t, "import", "product", "p.csv", bad, map[string]any{"maxErrors": 2})
		err := im.Process(context.Background(), job)
		if !worker.IsPermanent(err) || !strings.Contains(err.Error(), "stopped after 2 bad rows") {
			t.Fatalf("got %v, want a permanent stop after 2 bad rows", err)
		}
		if rows := job.errorRows(t); len(rows) != 3 {
			t.Errorf("got %d errors.csv rows, want the header and 2", len(rows))
		}
	})
	t.Run("onError abort", func(t *testing.T) {
		t.Parallel()
		im, _ := sqliteImport(t)
		job := newFileJob(t, "import", "product", "p.csv", bad, map[string]any{"onError": "abort"})
		err := im.Process(context.Background(), job)
		if !worker.IsPermanent(err) || !strings.Contains(err.Error(), `row 5, column price: "abc" is not a number`) {
			t.Fatalf("got %v, want a permanent stop at row 5", err)
		}
	})
	t.Run("bad params", func(t *testing.T) {
		t.Parallel()
		im, _ := sqliteImport(t)
		job := newFileJob(t, "import", "product", "p.csv", goodCSV, map[string]any{"onError": "explode"})
		err := im.Process(context.Background(), job)
		if !worker.IsPermanent(err) || commonops.ErrorCode(err) != commonops.EINVALID {
			t.Fatalf("got %v, want a permanent EINVALID", err)
		}
	})
}

func TestLoadConfigRefusesBrokenSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"type": "object", "properties": {"sku": {"type": "strin"}}}`), 0o644)
	p := filepath.Join(dir, "commonops.yaml")
	os.WriteFile(p, []byte("entities:\n  product:\n    schema: broken.json\n    key: [sku]\n"), 0o644)
	_, err := LoadConfig(p)
	if err == nil {
		t.Fatal("got no error, want the broken schema refused")
	}
	for _, want := range []string{p, "entity product", "broken.json", "does not compile"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to name %q", err, want)
		}
	}
	os.WriteFile(p, []byte("entities:\n  product:\n    schema: {type: object, minProperties: -1}\n"), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "minProperties") {
		t.Errorf("got %v, want an inline schema with minProperties -1 refused", err)
	}
	os.WriteFile(p, []byte("entities:\n  task:\n    schema: {type: object}\n"), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("got %v, want the reserved name task refused", err)
	}
}

// A file much longer than the reader's buffer, in small batches: the reading
// goroutine runs ahead while batches commit and checkpoints move (run with
// -race to check the two never share state).
func TestImportLongFileSmallBatches(t *testing.T) {
	t.Parallel()
	im, db := sqliteImport(t)
	var b strings.Builder
	b.WriteString("sku,name,price,stock,active,releasedAt\n")
	const n = 5000
	for i := range n {
		fmt.Fprintf(&b, "S-%d,Item %d,1.5,%d,true,2026-01-02\n", i, i, i)
	}
	job := newFileJob(t, "import", "product", "long.csv", b.String(), nil)
	if err := im.Process(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if got := tableCount(t, db); got != n {
		t.Fatalf("rows imported: got %d, want %d", got, n)
	}
	if c := job.counts(); c != [4]int64{n, n, n, 0} {
		t.Fatalf("counts total/processed/success/failed: got %v, want [%d %d %d 0]", c, n, n, n)
	}
}
