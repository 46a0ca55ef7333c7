package bulk

import (
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/commonops/commonops/bulk/tabular"
)

// TestCopyTextRoundTrip escapes values as COPY text lines and reads them
// back (the one-by-one path reads a refused batch's lines so), and reads
// the lines through copyLines, with and without their index, in reads of
// every size.
func TestCopyTextRoundTrip(t *testing.T) {
	rows := [][]any{
		{"plain", nil, "tab\there"},
		{`back\slash`, "new\nline", "cr\rhere"},
		{`\N`, "", "é"},
	}
	var lines [][]byte
	var want strings.Builder
	for i, r := range rows {
		var b []byte
		for j, v := range r {
			if j > 0 {
				b = append(b, '\t')
			}
			if v == nil {
				b = append(b, `\N`...)
			} else {
				b = appendCopyText(b, v.(string))
			}
		}
		b = append(b, '\n')
		if got := copyValues(b); !reflect.DeepEqual(got, r) {
			t.Errorf("copyValues(%q) = %q, want %q", b, got, r)
		}
		lines = append(lines, b)
		want.WriteString(strconv.Itoa(i) + "\t" + string(b))
	}
	for _, ord := range []bool{false, true} {
		w := want.String()
		if !ord {
			w = string(concat(lines))
		}
		for size := 1; size <= len(w)+1; size++ {
			got, err := io.ReadAll(&sizedReader{r: &copyLines{lines: lines, ord: ord}, n: size})
			if err != nil || string(got) != w {
				t.Fatalf("ord %v, reads of %d: got %q (%v), want %q", ord, size, got, err, w)
			}
		}
	}
}

func concat(lines [][]byte) []byte {
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
	}
	return b
}

// sizedReader reads at most n bytes a call from r.
type sizedReader struct {
	r io.Reader
	n int
}

func (s *sizedReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.n)]) }

// TestLineMatchesRecord holds the line a checker writes for the PostgreSQL
// sink (appendLine, from a row's coerced values) to the line the sink
// writes of the row's record (appendRecordLine): byte for byte, over
// escapes, a quoted "", nulls, an absent cell, \N as text, integers and
// numbers as written, booleans, JSON values, dates, a sink column the file
// lacks, and the sink's own column order.
func TestLineMatchesRecord(t *testing.T) {
	fields := []Field{{Type: "string"}, {Type: "string", Nullable: true}, {Type: "integer"}, {Type: "number"},
		{Type: "boolean"}, {Type: "object", Nullable: true}, {Type: "array"}, {Type: "string", Format: "date"}}
	r := &importRun{im: &Importer{Entity: &Entity{}}}
	for i, f := range fields {
		r.cols = append(r.cols, colPlan{idx: i, name: string(rune('a' + i)), field: f})
	}
	sinkCols := []string{"h", "a", "zz", "b", "c", "d", "e", "f", "g"}
	for _, name := range sinkCols {
		r.lineAt = append(r.lineAt, slices.IndexFunc(r.cols, func(c colPlan) bool { return c.name == name }))
	}
	rows := []tabular.Row{
		{Cells: []string{"x\ty\\z\nw\r", "", " 42 ", " 4.90 ", "Yes", `{"k":"v\t"}`, `[1,2.50,"a"]`, "2024-02-29"}},
		{Cells: []string{"", "", "", "", "", "null", `"str"`, ""}, Quoted: []bool{true, true, false, false, false, false, false, false}},
		{Cells: []string{"'=1", `\N`, "-0", "1e3", "0", "", "null", "2023-12-31"}},
	}
	for i, row := range rows {
		row.Num = i + 2
		vals := make([]coerced, len(r.cols))
		if _, msg := r.coerceRow(row, vals); msg != "" {
			t.Fatalf("row %d: %s", row.Num, msg)
		}
		line, want := r.appendLine(nil, vals), appendRecordLine(nil, r.recordOf(vals, nil), sinkCols)
		if string(line) != string(want) {
			t.Errorf("row %d: checker line %q, record line %q", row.Num, line, want)
		}
	}
}
