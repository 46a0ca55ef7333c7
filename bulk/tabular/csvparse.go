package tabular

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"unicode/utf8"
)

// csvParser reads RFC 4180 records as encoding/csv does (same errors, a
// blank line skipped, \r\n or \n line ends, fields per record left to the
// caller) and keeps two things encoding/csv drops: which fields were
// quoted, so "" (the empty string) is told from an empty field (NULL), and
// a \r\n inside a quoted field, which encoding/csv turns into \n.
type csvParser struct {
	br    *bufio.Reader
	comma rune

	line    []byte // the raw line being read
	rec     []byte // the fields' text, end to end
	ends    []int
	fields  []string
	text    string // the last record's fields, end to end
	quoted  []bool
	numLine int // lines read so far
	recLine int // line the last record started on
}

func newCSVParser(r io.Reader, comma rune) *csvParser {
	if comma == 0 {
		comma = ','
	}
	return &csvParser{br: bufio.NewReaderSize(r, 64<<10), comma: comma}
}

// readLine reads one line with its line end; io.EOF only when none is left.
func (p *csvParser) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		chunk, err := p.br.ReadSlice('\n')
		p.line = append(p.line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(p.line) > 0 && err == io.EOF {
			err = nil
			p.line = append(p.line, '\n') // the last line needs no line end
		}
		if err != nil {
			return nil, err
		}
		p.numLine++
		return p.line, nil
	}
}

// lineEnd reports the length of the line end that b starts with, or 0.
func lineEnd(b []byte) int {
	switch {
	case len(b) > 0 && b[0] == '\n':
		return 1
	case len(b) > 1 && b[0] == '\r' && b[1] == '\n':
		return 2
	}
	return 0
}

// Read returns the next record (valid until the next call) and which of its
// fields were quoted.
func (p *csvParser) Read() ([]string, []bool, error) {
	var line []byte
	var err error
	for {
		if line, err = p.readLine(); err != nil {
			return nil, nil, err
		}
		if lineEnd(line) != len(line) {
			break // not a blank line
		}
	}
	p.recLine = p.numLine
	p.rec, p.ends, p.quoted = p.rec[:0], p.ends[:0], p.quoted[:0]
	commaLen := utf8.RuneLen(p.comma)
	col := func(rest []byte, full []byte) int { return len(full) - len(rest) + 1 }
	full := line
parse:
	for {
		if len(line) == 0 || line[0] != '"' {
			// An unquoted field runs to the delimiter or the line end.
			i := bytes.IndexRune(line, p.comma)
			field := line
			if i >= 0 {
				field = field[:i]
			} else {
				field = field[:len(field)-lineEndLen(field)]
			}
			if j := bytes.IndexByte(field, '"'); j >= 0 {
				return nil, nil, &csv.ParseError{StartLine: p.recLine, Line: p.numLine, Column: col(field[j:], full), Err: csv.ErrBareQuote}
			}
			p.rec = append(p.rec, field...)
			p.ends = append(p.ends, len(p.rec))
			p.quoted = append(p.quoted, false)
			if i >= 0 {
				line = line[i+commaLen:]
				continue parse
			}
			break parse
		}
		// A quoted field, which may span lines.
		line = line[1:]
		for {
			i := bytes.IndexByte(line, '"')
			switch {
			case i >= 0:
				p.rec = append(p.rec, line[:i]...)
				line = line[i+1:]
				switch rn, _ := utf8.DecodeRune(line); {
				case rn == '"': // "" is a quote
					p.rec = append(p.rec, '"')
					line = line[1:]
				case rn == p.comma:
					line = line[commaLen:]
					p.ends = append(p.ends, len(p.rec))
					p.quoted = append(p.quoted, true)
					continue parse
				case lineEnd(line) == len(line):
					p.ends = append(p.ends, len(p.rec))
					p.quoted = append(p.quoted, true)
					break parse
				default:
					return nil, nil, &csv.ParseError{StartLine: p.recLine, Line: p.numLine, Column: col(line, full), Err: csv.ErrQuote}
				}
			case len(line) > 0:
				// The field goes on past the line end, kept as written.
				p.rec = append(p.rec, line...)
				if line, err = p.readLine(); err != nil {
					if err == io.EOF {
						return nil, nil, &csv.ParseError{StartLine: p.recLine, Line: p.numLine + 1, Column: 1, Err: csv.ErrQuote}
					}
					return nil, nil, err
				}
				full = line
			default:
				return nil, nil, &csv.ParseError{StartLine: p.recLine, Line: p.numLine, Column: col(line, full), Err: csv.ErrQuote}
			}
		}
	}
	s := string(p.rec) // one allocation for the record
	p.text = s
	p.fields = p.fields[:0]
	start := 0
	for _, end := range p.ends {
		p.fields = append(p.fields, s[start:end])
		start = end
	}
	return p.fields, p.quoted, nil
}

// lineEndLen is the length of the line end b ends with.
func lineEndLen(b []byte) int {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		return 2
	case bytes.HasSuffix(b, []byte("\n")):
		return 1
	}
	return 0
}
