package bulk

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/commonops/commonops/bulk/tabular"
)

// FuzzImportRow feeds arbitrary CSV through the reader, coercion and
// validation: nothing may panic, every row is either a record the schema
// accepts or an error message that names its row, a row number never goes
// backwards, and a row the column checks pass alone (valid, for rows that
// are only validated) is one record accepts.
func FuzzImportRow(f *testing.F) {
	for _, s := range []string{
		goodCSV,
		"sku,name,price\nA,\"B,\"\"q\"\"\",1e3\n",
		"sku,name,price,stock\nA,B,1,99999999999999999999\n",
		"sku,name,price\n\"open,1\n",
		"sku,name,price\nA,\xff,1\n",
		"\xEF\xBB\xBFsku,name,price,active,releasedAt\nA,B,-0,no,2026-02-30\n",
	} {
		f.Add(s)
	}
	cfg := loadTestConfig(f, "", "")
	im := &Importer{Entity: cfg.Entities["product"]}
	f.Fuzz(func(t *testing.T, content string) {
		rd, err := tabular.Open(strings.NewReader(content), tabular.Options{Format: tabular.CSV})
		if err != nil {
			return
		}
		defer rd.Close()
		run := &importRun{im: im, job: newFileJob(t, "import", "product", "", "", nil), rd: rd}
		if err := run.plan(); err != nil {
			return
		}
		last := 0
		for {
			row, err := rd.Next()
			if err == io.EOF || err != nil {
				return
			}
			if row.Num < last {
				t.Fatalf("row %d after row %d", row.Num, last)
			}
			last = row.Num
			quick := run.valid(row, make([]coerced, len(run.cols)))
			rec, msg := run.record(row, nil, nil)
			if quick && msg != "" {
				t.Fatalf("valid passed a row that record refuses: %s", msg)
			}
			if msg != "" {
				if !strings.HasPrefix(msg, "row ") || !utf8.ValidString(strings.ToValidUTF8(msg, "")) {
					t.Fatalf("got message %q, want one naming the row", msg)
				}
				continue
			}
			if m := im.Entity.Validate(rec); m != "" {
				t.Fatalf("got an accepted record %v that does not validate: %s", rec, m)
			}
		}
	})
}

// fuzzLimits are small, so that the fuzzer reaches them.
var fuzzLimits = tabular.Limits{MaxFieldBytes: 1 << 10, MaxRecordBytes: 4 << 10, MaxXLSXCells: 10_000,
	MaxXLSXEntryBytes: 1 << 20, MaxSharedStrings: 1000, MaxSharedStringBytes: 64 << 10}

// readAllBounded reads every row of content as format f with fuzzLimits:
// nothing may panic, and reading may allocate at most allocCap bytes more
// than 64 times the input (TotalAlloc; each fuzz worker runs one input at
// a time).
func readAllBounded(t *testing.T, f tabular.Format, content []byte, allocCap uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rd, err := tabular.Open(bytes.NewReader(content), tabular.Options{Format: f, TempDir: t.TempDir(), Limits: fuzzLimits})
	if err == nil {
		for rows := 0; ; rows++ {
			row, err := rd.Next()
			if err != nil {
				break
			}
			for _, c := range row.Cells {
				if int64(len(c)) > fuzzLimits.MaxRecordBytes {
					t.Fatalf("got a cell of %d bytes, over the %d record limit", len(c), fuzzLimits.MaxRecordBytes)
				}
			}
			if int64(len(row.Raw)) > fuzzLimits.MaxRecordBytes {
				t.Fatalf("got a line of %d bytes, over the %d record limit", len(row.Raw), fuzzLimits.MaxRecordBytes)
			}
		}
		rd.Close()
	}
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, 64*uint64(len(content))+allocCap; got > limit {
		t.Fatalf("reading %d bytes allocated %d bytes, want at most %d", len(content), got, limit)
	}
}

// FuzzReaderCSV reads arbitrary CSV with small limits.
func FuzzReaderCSV(f *testing.F) {
	for _, s := range []string{goodCSV, "a,b\n\"" + strings.Repeat("x", 5000), "a\n" + strings.Repeat("x,", 3000), "a;b\n1;\"2\n3\"\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) { readAllBounded(t, tabular.CSV, content, 1<<20) })
}

// FuzzReaderJSONL reads arbitrary JSON Lines with small limits.
func FuzzReaderJSONL(f *testing.F) {
	for _, s := range []string{`{"sku":"A","price":1}` + "\n", `{"a":"` + strings.Repeat("x", 2000) + `"}`, "[1,2]\n{}\nnull\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) { readAllBounded(t, tabular.JSONL, content, 1<<20) })
}

// FuzzReaderXLSX reads arbitrary bytes as a workbook, seeded with real
// ones, with small limits.
func FuzzReaderXLSX(f *testing.F) {
	for _, rows := range [][][]any{
		{{"A-1", "Apple", 1.5}},
		{{"A-1", strings.Repeat("long ", 100), 1}, {"A-2", "", nil}, {"A-3", true, "2026-01-02"}},
	} {
		var buf bytes.Buffer
		w, err := tabular.NewWriter(&buf, tabular.XLSX, []string{"sku", "name", "price"}, tabular.WriteOptions{})
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				f.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, content []byte) { readAllBounded(t, tabular.XLSX, content, 32<<20) })
}
