package tabular

import (
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
