package tabular

import (
	"bytes"
	"io"
	"unicode/utf8"
)

// boundedCSV passes a CSV stream through to encoding/csv, which buffers a
// whole record however long it is, and fails the read instead once a
// record or a field outgrows its limit. It follows the quoting of the
// stream just enough to know where records and fields end: a line break
// or delimiter inside quotes belongs to the field. (A stray quote that
// would mislead it is an error encoding/csv reports first, on that line.)
type boundedCSV struct {
	r      io.Reader
	limits Limits
	delim  []byte // the delimiter as UTF-8
	err    error  // sticky once a limit is broken

	line        int   // 1-based line of the next byte
	recLine     int   // line the current record starts on
	field       int   // 1-based field of the current record
	recBytes    int64 // bytes of the current record so far
	fieldBytes  int64 // bytes of the current field so far
	inQuotes    bool
	delimPrefix int // bytes of the delimiter matched so far

	slowOnly bool // tests: follow every byte, as the fast path must agree
}

func newBoundedCSV(r io.Reader, delim rune, l Limits) *boundedCSV {
	if delim == 0 {
		delim = ','
	}
	return &boundedCSV{r: r, limits: l, delim: utf8.AppendRune(nil, delim), line: 1, recLine: 1, field: 1}
}

func (b *boundedCSV) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if b.skim(p[:n]) {
		return n, err
	}
	for i, c := range p[:n] {
		b.recBytes++
		b.fieldBytes++
		switch {
		case c == '"':
			b.inQuotes = !b.inQuotes
		case c == '\n':
			b.line++
			if !b.inQuotes {
				b.recLine, b.field, b.recBytes, b.fieldBytes = b.line, 1, 0, 0
			}
		}
		if !b.inQuotes && c == b.delim[b.delimPrefix] {
			if b.delimPrefix++; b.delimPrefix == len(b.delim) {
				b.field++
				b.fieldBytes, b.delimPrefix = 0, 0
			}
		} else if b.delimPrefix = 0; !b.inQuotes && c == b.delim[0] {
			b.delimPrefix = 1 // c starts the delimiter afresh
		}
		switch {
		case b.fieldBytes > b.limits.MaxFieldBytes:
			b.err = limitErr("maxFieldBytes", "row %d, column %d is longer than the %s field limit", b.recLine, b.field, Size(b.limits.MaxFieldBytes))
		case b.recBytes > b.limits.MaxRecordBytes:
			b.err = limitErr("maxRecordBytes", "row %d is longer than the %s record limit", b.recLine, Size(b.limits.MaxRecordBytes))
		}
		if b.err != nil {
			return i, b.err
		}
	}
	return n, err
}

// skim follows chunk in a few passes over its bytes instead of a step per
// byte, and reports whether it could: when the chunk holds no quote and
// starts outside quotes, only line ends and delimiters matter, and when
// neither count could pass its limit within the chunk (each grows by at
// most a byte a byte), only where the chunk leaves them matters. It applies
// to single-byte delimiters; the byte-by-byte loop handles the rest.
func (b *boundedCSV) skim(chunk []byte) bool {
	n := int64(len(chunk))
	if b.slowOnly || b.inQuotes || len(b.delim) != 1 || b.delim[0] == '\n' || b.delimPrefix != 0 ||
		b.recBytes+n > b.limits.MaxRecordBytes || b.fieldBytes+n > b.limits.MaxFieldBytes ||
		bytes.IndexByte(chunk, '"') >= 0 {
		return false
	}
	d := b.delim[0]
	tail := chunk // the bytes after the chunk's last line end
	if nl := bytes.Count(chunk, []byte{'\n'}); nl > 0 {
		b.line += nl
		tail = chunk[bytes.LastIndexByte(chunk, '\n')+1:]
		b.recLine, b.field, b.recBytes, b.fieldBytes = b.line, 1, 0, 0
	}
	b.recBytes += int64(len(tail))
	if i := bytes.LastIndexByte(tail, d); i >= 0 {
		b.field += bytes.Count(tail, b.delim)
		b.fieldBytes = int64(len(tail) - i - 1)
	} else {
		b.fieldBytes += int64(len(tail))
	}
	return true
}
