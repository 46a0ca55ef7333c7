package tabular

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

type csvReader struct {
	cr     *csvParser
	header []string
	utf8   bool
}

func newCSV(br *bufio.Reader, o Options) (Reader, error) {
	if b, _ := br.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		_, _ = br.Discard(3)
	}
	var src io.Reader = br
	checkUTF8 := true
	switch cm, err := charmapOf(o.Encoding); {
	case err != nil:
		return nil, err
	case cm != nil:
		src, checkUTF8 = cm.NewDecoder().Reader(br), false
	}
	// A row of the wrong length is that row's error, not the file's.
	cr := newCSVParser(newBoundedCSV(src, o.Delimiter, o.Limits), o.Delimiter)
	r := &csvReader{cr: cr, utf8: checkUTF8}
	rec, _, err := cr.Read()
	if err == io.EOF {
		return nil, ErrEmpty
	}
	if err != nil {
		return nil, csvError(err)
	}
	seen := make(map[string]bool, len(rec))
	for i, name := range rec {
		if checkUTF8 && !utf8.ValidString(name) {
			return nil, &SyntaxError{Line: 1, Err: fmt.Errorf("header column %d is not valid UTF-8 (set params.encoding for latin1 or windows-1252 files)", i+1)}
		}
		name = strings.TrimSpace(name)
		if name != "" && seen[name] {
			return nil, &SyntaxError{Line: 1, Err: fmt.Errorf("header names column %q twice", name)}
		}
		seen[name] = true
		r.header = append(r.header, name)
	}
	return r, nil
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if pe.StartLine != 0 && pe.StartLine != pe.Line {
			return &SyntaxError{Line: pe.StartLine, Err: fmt.Errorf("the record starting here breaks at line %d, column %d: %w (a quote left open?)", pe.Line, pe.Column, pe.Err)}
		}
		return &SyntaxError{Line: pe.Line, Err: fmt.Errorf("column %d: %w", pe.Column, pe.Err)}
	}
	return err
}

func (r *csvReader) Format() Format   { return CSV }
func (r *csvReader) Header() []string { return r.header }
func (r *csvReader) Close() error     { return nil }

func (r *csvReader) Next() (Row, error) {
	rec, quoted, err := r.cr.Read()
	if err != nil {
		return Row{}, csvError(err)
	}
	row := Row{Num: r.cr.recLine, Cells: rec, Quoted: quoted}
	if len(rec) != len(r.header) {
		row.Err = fmt.Errorf("has %d fields, the header has %d", len(rec), len(r.header))
		return row, nil
	}
	if r.utf8 && !validUTF8Fields(r.cr.text, rec) {
		for i, c := range rec {
			if !utf8.ValidString(c) {
				row.Err = fmt.Errorf("column %s: not valid UTF-8 (set params.encoding for latin1 or windows-1252 files)", r.header[i])
				return row, nil
			}
		}
	}
	return row, nil
}

// validUTF8Fields reports whether every field of a record is valid UTF-8,
// in one pass over text, the fields end to end: then each field is, unless
// one starts inside another's character (on a continuation byte).
func validUTF8Fields(text string, fields []string) bool {
	if !utf8.ValidString(text) {
		return false
	}
	for _, f := range fields {
		if f != "" && !utf8.RuneStart(f[0]) {
			return false
		}
	}
	return true
}

// CheckEncoding refuses an encoding name a CSV file cannot be read in: the
// names are utf-8 (the default), latin1 and windows-1252, with aliases.
func CheckEncoding(name string) error {
	_, err := charmapOf(name)
	return err
}

// charmapOf returns the decoder of a named encoding, nil for UTF-8.
func charmapOf(name string) (*charmap.Charmap, error) {
	switch strings.ToLower(strings.ReplaceAll(name, "_", "-")) {
	case "", "utf-8", "utf8":
		return nil, nil
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1":
		return charmap.ISO8859_1, nil
	case "windows-1252", "cp1252":
		return charmap.Windows1252, nil
	}
	return nil, fmt.Errorf("unknown encoding %q (want utf-8, latin1 or windows-1252)", name)
}
