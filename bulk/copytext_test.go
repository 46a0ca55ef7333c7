package bulk

import (
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
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
