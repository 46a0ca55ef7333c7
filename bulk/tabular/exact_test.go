package tabular

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestNeutralize(t *testing.T) {
	for _, tt := range []struct{ in, out string }{
		{"=1+1", "'=1+1"}, {"+1", "'+1"}, {"-2", "'-2"}, {"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"}, {"\rx", "'\rx"}, {"'=x", "''=x"}, {"''+x", "'''+x"},
		{"plain", "plain"}, {"'quoted", "'quoted"}, {"", ""}, {"'", "'"}, {"a=b", "a=b"},
	} {
		if got := Neutralize(tt.in); got != tt.out {
			t.Errorf("Neutralize(%q): got %q, want %q", tt.in, got, tt.out)
		}
		if got := Unneutralize(tt.out); got != tt.in {
			t.Errorf("Unneutralize(%q): got %q, want %q", tt.out, got, tt.in)
		}
	}
}

// TestCSVExact writes values through the CSV writer and reads them back:
// NULL and "" stay apart, \r\n inside a field survives, and the bytes are
// what the format table in docs/design.md says.
func TestCSVExact(t *testing.T) {
	values := []any{nil, "", "a\r\nb", `say "hi"`, "x,y", " lead", "=1", "日本\ufeff"}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, CSV, []string{"a", "b", "c", "d", "e", "f", "g", "h"}, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(values); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wantFile := "a,b,c,d,e,f,g,h\n,\"\",\"a\r\nb\",\"say \"\"hi\"\"\",\"x,y\",\" lead\",'=1,日本\ufeff\n"
	if got := buf.String(); got != wantFile {
		t.Fatalf("got file %q, want %q", got, wantFile)
	}
	r, err := Open(&buf, Options{Format: CSV})
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Next()
	if err != nil || row.Err != nil {
		t.Fatalf("read: %v %v", err, row.Err)
	}
	wantCells := []string{"", "", "a\r\nb", `say "hi"`, "x,y", " lead", "'=1", "日本\ufeff"}
	wantQuoted := []bool{false, true, true, true, true, true, false, false}
	if !slices.Equal(row.Cells, wantCells) || !slices.Equal(row.Quoted, wantQuoted) {
		t.Errorf("got cells %q quoted %v, want %q quoted %v", row.Cells, row.Quoted, wantCells, wantQuoted)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("got %v after the last row, want io.EOF", err)
	}
}

// TestCSVParserErrors: the parser reports the lines encoding/csv did.
func TestCSVParserErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		line     int
	}{
		{"open quote", "a,b\n1,\"x\n2,y\n", 2},
		{"bare quote", "a,b\n1,x\"y\n", 2},
		{"text after quote", "a,b\n1,\"x\"y\n", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(strings.NewReader(tt.in), Options{Format: CSV})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Next()
			var se *SyntaxError
			if !errors.As(err, &se) || se.Line != tt.line {
				t.Errorf("got %v, want a syntax error on line %d", err, tt.line)
			}
		})
	}
	r, err := Open(strings.NewReader("\ufeffa,b\r\n\r\n1,2\r\n3,4"), Options{Format: CSV})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, slices.Clone(row.Cells))
	}
	if h := r.Header(); !slices.Equal(h, []string{"a", "b"}) || len(got) != 2 || got[0][1] != "2" || got[1][1] != "4" {
		t.Errorf("got header %q rows %q, want a,b then 1,2 and 3,4 (BOM, CRLF and a blank line skipped)", h, got)
	}
}
