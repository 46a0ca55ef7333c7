package bulk

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops/bulk/tabular"
	"github.com/commonops/commonops/worker"
)

// repeatReader yields n bytes made of pat over and over, without holding
// them: the generator of the attacks' giant inputs.
type repeatReader struct {
	pat []byte
	n   int64
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pat[r.off:])
		n += c
		r.off = (r.off + c) % len(r.pat)
	}
	r.n -= int64(n)
	return n, nil
}

// stream is prefix, n bytes of pat repeated, then suffix.
func stream(prefix, pat string, n int64, suffix string) io.Reader {
	return io.MultiReader(strings.NewReader(prefix), &repeatReader{pat: []byte(pat), n: n}, strings.NewReader(suffix))
}

// measureHeap runs f while sampling the heap every millisecond, and returns
// the peak growth of HeapInuse over its level before f.
func measureHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	var mu sync.Mutex
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		if ms.HeapInuse > base && ms.HeapInuse-base > peak {
			peak = ms.HeapInuse - base
		}
		mu.Unlock()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	f()
	sample()
	close(stop)
	<-done
	return peak
}

const (
	sheetHead = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`
	sheetTail = `</sheetData></worksheet>`
	// headerRow names the product columns in inline strings.
	headerRow = `<row r="1"><c r="A1" t="inlineStr"><is><t>sku</t></is></c>` +
		`<c r="B1" t="inlineStr"><is><t>name</t></is></c><c r="C1" t="inlineStr"><is><t>price</t></is></c></row>`
	sstHead = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">`
)

// zipPart is one entry of a generated workbook. declared, when not 0, is
// the uncompressed size its headers claim instead of the true one.
type zipPart struct {
	name     string
	body     io.Reader
	declared uint64
}

// bombXLSX builds a workbook around the given sheet and shared strings
// (nil for none) in memory: the parts compress a thousandfold, so the
// archive stays small however big they are.
func bombXLSX(t testing.TB, sheet, sst io.Reader, declaredSheet uint64) []byte {
	t.Helper()
	ct := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
		`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>` +
		`<Default Extension="xml" ContentType="application/xml"/>` +
		`<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>` +
		`<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>` +
		`<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>` +
		`</Types>`
	rels := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
		`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>` +
		`</Relationships>`
	wb := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">` +
		`<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>`
	wbRels := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
		`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>` +
		`<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>` +
		`</Relationships>`
	parts := []zipPart{
		{name: "[Content_Types].xml", body: strings.NewReader(ct)},
		{name: "_rels/.rels", body: strings.NewReader(rels)},
		{name: "xl/workbook.xml", body: strings.NewReader(wb)},
		{name: "xl/_rels/workbook.xml.rels", body: strings.NewReader(wbRels)},
		{name: "xl/worksheets/sheet1.xml", body: sheet, declared: declaredSheet},
	}
	if sst != nil {
		parts = append(parts, zipPart{name: "xl/sharedStrings.xml", body: sst})
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range parts {
		var comp bytes.Buffer
		fw, err := flate.NewWriter(&comp, flate.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		crc := crc32.NewIEEE()
		n, err := io.Copy(io.MultiWriter(fw, crc), p.body)
		if err != nil {
			t.Fatal(err)
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		size := uint64(n)
		if p.declared != 0 {
			size = p.declared
		}
		w, err := zw.CreateRaw(&zip.FileHeader{Name: p.name, Method: zip.Deflate, CRC32: crc.Sum32(),
			CompressedSize64: uint64(comp.Len()), UncompressedSize64: size})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(comp.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bombImporter is a dry-run importer of the product entity whose import
// settings are limitsYAML (YAML keys of the entity's import block).
func bombImporter(t testing.TB, limitsYAML string) *Importer {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "product.schema.json"), []byte(productSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	y := "entities:\n  product:\n    schema: product.schema.json\n    key: [sku]\n"
	if limitsYAML != "" {
		y += "    import:\n" + indent(limitsYAML, 6)
	}
	p := filepath.Join(dir, "commonops.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("LoadConfig: %v\n%s", err, y)
	}
	return &Importer{Entity: cfg.Entities["product"]}
}

// bombCases are the attacks of the hardening issue, each with the import
// settings it runs under and the words its failure must have. The record
// and field limits are 1 MiB; the XLSX bombs expand to 56 MB or more.
func bombCases(t testing.TB) []struct {
	name, limits, file, want string
	open                     func() io.Reader
} {
	const mib = 1 << 20
	const small = "maxRecordBytes: 1048576\nmaxFieldBytes: 1048576"
	// Without the ratio check, to reach the limit behind it.
	const noRatio = small + "\nmaxXLSXRatio: 100000"
	sstBomb := func() io.Reader { return stream(sstHead, "<si><t>x</t></si>", 4_000_000*17, "</sst>") }
	dataRow := `<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" t="s"><v>1</v></c><c r="C2"><v>1</v></c></row>`
	sheetWith := func(rows string) io.Reader { return strings.NewReader(sheetHead + headerRow + rows + sheetTail) }
	wideRow := func() io.Reader {
		return stream(sheetHead+`<row r="1">`, "<c><v>1</v></c>", 4_000_000*14, "</row>"+sheetTail)
	}
	hugeCell := func() io.Reader {
		return stream(sheetHead+headerRow+`<row r="2"><c r="A2" t="str"><v>`, "x", 64*mib, "</v></c></row>"+sheetTail)
	}
	xlsx := func(sheet, sst func() io.Reader, declared uint64) func() io.Reader {
		build := sync.OnceValue(func() []byte { // when the case runs
			var s io.Reader
			if sst != nil {
				s = sst()
			}
			return bombXLSX(t, sheet(), s, declared)
		})
		return func() io.Reader { return bytes.NewReader(build()) }
	}
	return []struct {
		name, limits, file, want string
		open                     func() io.Reader
	}{
		{"csv unterminated quoted field", small, "bomb.csv", "row 2 is longer than the 1 MiB record limit (import.maxRecordBytes)",
			func() io.Reader { return stream("sku,name,price\nA-1,\"", "x", 64*mib, "") }},
		{"csv record without line breaks", small, "bomb.csv", "(import.maxRecordBytes)",
			func() io.Reader { return stream("sku,name,price\n", "a,b,c,", 64*mib, "") }},
		{"csv field without line breaks", "maxFieldBytes: 65536", "bomb.csv", "row 2, column 1 is longer than the 64 KiB field limit (import.maxFieldBytes)",
			func() io.Reader { return stream("sku,name,price\n", "x", 64*mib, "") }},
		{"csv many long bad rows", "maxFieldBytes: 1048576\nmaxErrorsBytes: 32768", "bomb.csv", "",
			func() io.Reader {
				return stream("sku,name,price\n", "A,"+strings.Repeat("x", 1000_000)+",not-a-price\n", 300*1_000_014, "")
			}},
		{"jsonl line", small, "bomb.jsonl", "row 1 is longer than the 1 MiB record limit (import.maxRecordBytes)",
			func() io.Reader { return stream(`{"sku":"`, "x", 64*mib, "\"}\n") }},
		{"xlsx shared strings bomb", small, "bomb.xlsx", "(import.maxXLSXRatio)",
			xlsx(func() io.Reader { return sheetWith(dataRow) }, sstBomb, 0)},
		{"xlsx shared strings count", noRatio + "\nmaxSharedStrings: 100000", "bomb.xlsx", "(import.maxSharedStrings)",
			xlsx(func() io.Reader { return sheetWith(dataRow) }, sstBomb, 0)},
		{"xlsx shared strings bytes", noRatio + "\nmaxSharedStringBytes: 16777216", "bomb.xlsx", "(import.maxSharedStringBytes)",
			xlsx(func() io.Reader { return sheetWith(dataRow) }, sstBomb, 0)},
		{"xlsx sheet bomb", small, "bomb.xlsx", "(import.maxXLSXRatio)", xlsx(wideRow, nil, 0)},
		{"xlsx wide row", noRatio, "bomb.xlsx", "row 1 is longer than the 1 MiB record limit (import.maxRecordBytes)", xlsx(wideRow, nil, 0)},
		{"xlsx huge cell", "maxFieldBytes: 262144\nmaxXLSXRatio: 100000", "bomb.xlsx", "row 2, cell 1 is longer than the 256 KiB field limit (import.maxFieldBytes)", xlsx(hugeCell, nil, 0)},
		{"xlsx entry over the size limit", noRatio + "\nmaxXLSXEntryBytes: 33554432", "bomb.xlsx", "(import.maxXLSXEntryBytes)", xlsx(hugeCell, nil, 0)},
		{"xlsx lying header", noRatio, "bomb.xlsx", "xl/worksheets/sheet1.xml holds more than the 4096 bytes its header declares",
			xlsx(hugeCell, nil, 4096)},
	}
}

// TestImportBombs replays the memory bombs of the hardening issue: each must
// fail the import for good with the limit's message, while the heap grows
// by less than 64 MiB and errors.csv stays small. Not parallel: the heap is
// the process's.
func TestImportBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("generates hundreds of MB")
	}
	for _, tc := range bombCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			im := bombImporter(t, tc.limits)
			job := newFileJob(t, "import", "product", "", "", map[string]any{"dryRun": true})
			name := tc.file
			job.task.FileName, job.open = &name, tc.open
			var err error
			peak := measureHeap(func() { err = im.Process(context.Background(), job) })
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got error %v, want one with %q", err, tc.want)
			}
			if err != nil && !worker.IsPermanent(err) {
				t.Errorf("got a retryable error %v, want a permanent one", err)
			}
			if peak > 64<<20 {
				t.Errorf("got a heap peak %d MiB over the start, want under 64 MiB", peak>>20)
			}
			if n := len(job.errorsCSV); n > 64<<10 {
				t.Errorf("got errors.csv of %d bytes, want under 64 KiB", n)
			}
		})
	}
}

// TestImportErrorsCSVBounded checks what errors.csv keeps of long bad rows
// and that it stops at its size limit with a note counting the rest.
func TestImportErrorsCSVBounded(t *testing.T) {
	t.Parallel()
	im := bombImporter(t, "maxErrorRowBytes: 10\nmaxErrorsBytes: 200")
	var csv strings.Builder
	csv.WriteString("sku,name,price\n")
	for i := range 20 {
		fmt.Fprintf(&csv, "A-%d,%s,x\n", i, strings.Repeat("é", 30))
	}
	job := newFileJob(t, "import", "product", "bad.csv", csv.String(), map[string]any{"dryRun": true})
	if err := im.Process(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	rows := job.errorRows(t)
	if len(rows) < 3 {
		t.Fatalf("got errors.csv %q, want a header, rows and a note", job.errorsCSV)
	}
	if got, want := rows[1][1:3], []string{"A-0", "ééé" + cutMark}; !slices.Equal(got, want) {
		t.Errorf("got the first bad row's cells %q, want %q", got, want)
	}
	note := rows[len(rows)-1]
	written := len(rows) - 2
	if want := fmt.Sprintf("errors.csv stops here: %d more bad rows were counted but not written, past its 200 bytes limit (import.maxErrorsBytes)", 20-written); note[len(note)-1] != want {
		t.Errorf("got the last line %q, want %q", note, want)
	}
	if c := job.counts(); c[3] != 20 {
		t.Errorf("got %d failed rows, want 20", c[3])
	}
}

func TestLoadConfigLimits(t *testing.T) {
	t.Parallel()
	im := bombImporter(t, "maxRecordBytes: 4194304\nmaxErrorsBytes: 1024\nsink: {type: http, url: http://example.test/}")
	got := im.Entity.Limits
	if got.MaxRecordBytes != 4<<20 || got.MaxErrorsBytes != 1024 || im.Entity.Sink == nil {
		t.Errorf("got limits %+v and sink %v, want maxRecordBytes 4 MiB, maxErrorsBytes 1024 and the sink", got, im.Entity.Sink)
	}
	d := got.WithDefaults()
	if d.MaxRecordBytes != 4<<20 || d.MaxFieldBytes != tabular.MaxFieldBytesDefault || d.MaxErrorRowBytes != MaxErrorRowBytesDefault {
		t.Errorf("got %+v with defaults, want the set values kept and the rest defaulted", d)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.json"), []byte(productSchema), 0o644)
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("entities:\n  product:\n    schema: s.json\n    import:\n      maxXLSXRatio: -1\n"), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "import.maxXLSXRatio") {
		t.Errorf("got %v, want the negative maxXLSXRatio refused by name", err)
	}
}

// BenchmarkImportBombs reports, for each attack of TestImportBombs, the
// peak growth of the heap and the process's peak RSS (VmHWM, reset before
// each attack through /proc/self/clear_refs), which the issue bounds at
// 150 MB. Run with -benchtime=1x.
func BenchmarkImportBombs(b *testing.B) {
	for _, tc := range bombCases(b) {
		b.Run(strings.ReplaceAll(tc.name, " ", "-"), func(b *testing.B) {
			im := bombImporter(b, tc.limits)
			var peak uint64
			tc.open() // builds a workbook before the measure
			runtime.GC()
			os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			for b.Loop() {
				job := newFileJob(&testing.T{}, "import", "product", "", "", map[string]any{"dryRun": true})
				name := tc.file
				job.task.FileName, job.open = &name, tc.open
				var err error
				peak = max(peak, measureHeap(func() { err = im.Process(context.Background(), job) }))
				if (err == nil) != (tc.want == "") {
					b.Fatalf("got error %v, want %q", err, tc.want)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MB")
			b.ReportMetric(peakRSSMB(), "peakRSS-MB")
		})
	}
}
