package tabular

import (
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// chunks hands out its text in the given sizes, then the rest.
type chunks struct {
	s     string
	sizes []int
}

func (c *chunks) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	n := len(c.s)
	if len(c.sizes) > 0 {
		n = min(n, c.sizes[0])
		c.sizes = c.sizes[1:]
	}
	n = copy(p[:min(len(p), n)], c.s)
	c.s = c.s[n:]
	return n, nil
}

// TestBoundedCSVSkimAgrees feeds random CSV text in random chunks through
// the bound with and without its fast path (skim) and wants the same
// position after every read and the same error, limits broken or not.
func TestBoundedCSVSkimAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "bc", "12345", ",", ";", "\n", "\r\n", `"`, `""`, "é", "\t"}
	skimmed := 0
	for i := range 3000 {
		var sb strings.Builder
		for range rng.IntN(400) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		text := sb.String()
		delim := []rune{',', ';', '\t', 'é'}[rng.IntN(4)]
		limits := Limits{MaxFieldBytes: int64(1 + rng.IntN(60)), MaxRecordBytes: int64(1 + rng.IntN(200))}
		if rng.IntN(4) == 0 {
			limits = Limits{MaxFieldBytes: 1 << 20, MaxRecordBytes: 1 << 20}
		}
		var sizes []int
		for range 50 {
			sizes = append(sizes, 1+rng.IntN(40))
		}
		fast := newBoundedCSV(&chunks{s: text, sizes: sizes}, delim, limits)
		slow := newBoundedCSV(&chunks{s: text, sizes: sizes}, delim, limits)
		slow.slowOnly = true
		p, q := make([]byte, 64), make([]byte, 64)
		for step := 0; ; step++ {
			wasQuoted := fast.inQuotes
			n, ferr := fast.Read(p)
			m, serr := slow.Read(q)
			if !wasQuoted && n > 0 && !strings.Contains(string(p[:n]), `"`) {
				skimmed++
			}
			if n != m || string(p[:n]) != string(q[:m]) || errText(ferr) != errText(serr) {
				t.Fatalf("case %d (%q, delim %q, %+v) read %d: fast %d bytes, %v; slow %d bytes, %v", i, text, delim, limits, step, n, ferr, m, serr)
			}
			if f, s := *fast, *slow; f.line != s.line || f.recLine != s.recLine || f.field != s.field ||
				f.recBytes != s.recBytes || f.fieldBytes != s.fieldBytes || f.inQuotes != s.inQuotes || f.delimPrefix != s.delimPrefix {
				t.Fatalf("case %d (%q, delim %q) read %d: fast at %+v, slow at %+v", i, text, delim, step, f, s)
			}
			if ferr != nil {
				break
			}
		}
	}
	if skimmed < 1000 {
		t.Fatalf("only %d reads could take the fast path; the test does not exercise it", skimmed)
	}
}

func errText(err error) string {
	if err == nil || errors.Is(err, io.EOF) {
		return ""
	}
	return err.Error()
}
