package tabular

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
)

// Writer streams records to a file, one value per column in the order the
// writer was made with. Close flushes it; it does not close the destination.
type Writer interface {
	Write(values []any) error
	Close() error
}

// WriteOptions shape a Writer. The zero value is the safe default.
type WriteOptions struct {
	// KeepFormulas writes CSV and XLSX text that starts with = + - @, a
	// tab or a carriage return as it is. By default such a cell is
	// neutralised (Neutralize) so a spreadsheet does not run it as a
	// formula (OWASP CSV injection).
	KeepFormulas bool
}

// NewWriter returns a writer of format f over w that starts with a header
// row of columns (CSV, XLSX); JSON Lines objects use columns as keys.
func NewWriter(w io.Writer, f Format, columns []string, o WriteOptions) (Writer, error) {
	switch f {
	case CSV, "":
		cw := &csvWriter{bw: bufio.NewWriterSize(w, 64<<10), neutralize: !o.KeepFormulas}
		for i, c := range columns {
			if i > 0 {
				cw.bw.WriteByte(',')
			}
			cw.field(c)
		}
		cw.bw.WriteByte('\n')
		return cw, nil
	case JSONL:
		jw := &jsonlWriter{bw: bufio.NewWriterSize(w, 64<<10)}
		for _, c := range columns {
			k, _ := json.Marshal(c)
			jw.keys = append(jw.keys, append(k, ':'))
		}
		return jw, nil
	case XLSX:
		return newXLSXWriter(w, columns, !o.KeepFormulas)
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

// FormatCell renders a value as CSV or XLSX cell text: numbers without
// exponent where they fit, times in RFC 3339 UTC, nil as empty.
func FormatCell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		return v.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// formulaStart reports whether a spreadsheet may read s as a formula: it
// starts with = + - @, a tab or a carriage return.
func formulaStart(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// Neutralize prefixes a single quote (OWASP) to text a spreadsheet would
// run as a formula, and to text that already starts with quotes followed
// by such a character, so that Unneutralize gives every value back:
// "=1+1" is written "'=1+1", "'=1+1" is written "”=1+1".
func Neutralize(s string) string {
	if formulaStart(strings.TrimLeft(s, "'")) {
		return "'" + s
	}
	return s
}

// Unneutralize undoes Neutralize: it drops one leading quote from text
// made of quotes followed by = + - @, a tab or a carriage return. Other
// text is returned as it is.
func Unneutralize(s string) string {
	if len(s) > 1 && s[0] == '\'' && formulaStart(strings.TrimLeft(s, "'")) {
		return s[1:]
	}
	return s
}

// csvWriter writes RFC 4180 CSV with \n line ends. Unlike encoding/csv it
// tells NULL from the empty string: nil is an empty field, "" is written
// "" (quoted), and the reader keeps the difference.
type csvWriter struct {
	bw         *bufio.Writer
	neutralize bool
}

func (c *csvWriter) Write(values []any) error {
	for i, v := range values {
		if i > 0 {
			c.bw.WriteByte(',')
		}
		switch v := v.(type) {
		case nil:
		case string:
			if c.neutralize {
				v = Neutralize(v)
			}
			c.field(v)
		default:
			c.field(FormatCell(v))
		}
	}
	return c.bw.WriteByte('\n')
}

// field writes one field, quoted when it is empty or holds a delimiter, a
// quote or a line break, or starts with a space (as encoding/csv does).
func (c *csvWriter) field(s string) {
	if s != "" && s != `\.` && !strings.ContainsAny(s, ",\"\r\n") {
		if r, _ := utf8.DecodeRuneInString(s); !unicode.IsSpace(r) {
			c.bw.WriteString(s)
			return
		}
	}
	c.bw.WriteByte('"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		c.bw.WriteString(s[:i+1])
		c.bw.WriteByte('"')
		s = s[i+1:]
	}
	c.bw.WriteString(s)
	c.bw.WriteByte('"')
}

func (c *csvWriter) Close() error { return c.bw.Flush() }

type jsonlWriter struct {
	bw   *bufio.Writer
	keys [][]byte
}

func (j *jsonlWriter) Write(values []any) error {
	j.bw.WriteByte('{')
	for i, k := range j.keys {
		if i > 0 {
			j.bw.WriteByte(',')
		}
		j.bw.Write(k)
		var v any
		if i < len(values) {
			v = values[i]
		}
		switch t := v.(type) {
		case []byte:
			v = string(t)
		case time.Time:
			v = t.UTC().Format(time.RFC3339Nano)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("column %s: %w", k[:len(k)-1], err)
		}
		j.bw.Write(b)
	}
	j.bw.WriteByte('}')
	return j.bw.WriteByte('\n')
}

func (j *jsonlWriter) Close() error { return j.bw.Flush() }

// XLSXRowsMax is the most data rows one sheet holds (Excel's limit less the
// header row).
const XLSXRowsMax = excelize.TotalRows - 1

// xlsxWriter writes numbers as numeric cells where a spreadsheet holds
// them exactly and as text cells where it cannot (see number), booleans as
// boolean cells and the rest as text. NULL and "" are both an empty cell.
type xlsxWriter struct {
	w          io.Writer
	f          *excelize.File
	sw         *excelize.StreamWriter
	row        int
	buf        []any
	neutralize bool
	scales     map[int]int // decimal places -> style of that number format
}

func newXLSXWriter(w io.Writer, columns []string, neutralize bool) (*xlsxWriter, error) {
	f := excelize.NewFile()
	// excelize's WriteTo builds the whole archive in a bytes.Buffer before
	// copying it out (about 130 MB of heap for a 1 GB export). Its zip
	// writer hook is handed that buffer; writing to w instead streams the
	// archive with constant memory and leaves the buffer empty. (What is
	// lost: excelize's in-buffer patch of zip64 local headers for a sheet
	// over 4 GB uncompressed, which Go's zip64 central directory covers.)
	f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return zip.NewWriter(w) })
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		f.Close()
		return nil, err
	}
	x := &xlsxWriter{w: w, f: f, sw: sw, buf: make([]any, len(columns)), neutralize: neutralize, scales: map[int]int{}}
	header := make([]any, len(columns))
	for i, c := range columns {
		header[i] = c
	}
	if err := x.setRow(header); err != nil {
		f.Close()
		return nil, err
	}
	return x, nil
}

func (x *xlsxWriter) setRow(values []any) error {
	x.row++
	if x.row > excelize.TotalRows {
		return errors.New("an XLSX sheet holds at most 1,048,575 rows: export as csv or jsonl")
	}
	cell, err := excelize.CoordinatesToCellName(1, x.row)
	if err != nil {
		return err
	}
	return x.sw.SetRow(cell, values)
}

func (x *xlsxWriter) Write(values []any) error {
	for i := range x.buf {
		var v any
		if i < len(values) {
			v = values[i]
		}
		var err error
		switch t := v.(type) {
		case nil, bool, float32, float64:
			x.buf[i] = t
		case string:
			if t == "" {
				x.buf[i] = nil
			} else if x.neutralize {
				x.buf[i] = Neutralize(t)
			} else {
				x.buf[i] = t
			}
		case int:
			x.buf[i], err = x.number(strconv.Itoa(t))
		case int32:
			x.buf[i], err = x.number(strconv.FormatInt(int64(t), 10))
		case int64:
			x.buf[i], err = x.number(strconv.FormatInt(t, 10))
		case json.Number:
			x.buf[i], err = x.number(t.String())
		default:
			x.buf[i] = FormatCell(t)
		}
		if err != nil {
			return err
		}
	}
	return x.setRow(x.buf)
}

// xlsxDigits is how many significant digits a spreadsheet number keeps
// (Excel's limit; the reader formats numbers to it too).
const xlsxDigits = 15

// number returns the cell of a number written as s (a JSON number). One
// of at most 15 significant digits without an exponent is a numeric cell
// whose number format shows its decimals, so 4.90 reads back as 4.90.
// Any other (an integer beyond 15 digits, a long decimal, an exponent,
// -0) is a text cell of s: its digits survive, a spreadsheet shows it as
// text.
func (x *xlsxWriter) number(s string) (any, error) {
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	sig := strings.TrimLeft(whole+frac, "0")
	if len(sig) > xlsxDigits || strings.ContainsAny(s, "eE") || sig == "" && s[0] == '-' {
		return s, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s, nil
	}
	style, ok := x.scales[len(frac)]
	if !ok {
		format := "0"
		if len(frac) > 0 {
			format += "." + strings.Repeat("0", len(frac))
		}
		if style, err = x.f.NewStyle(&excelize.Style{CustomNumFmt: &format}); err != nil {
			return nil, err
		}
		x.scales[len(frac)] = style
	}
	return excelize.Cell{StyleID: style, Value: f}, nil
}

func (x *xlsxWriter) Close() error {
	defer x.f.Close()
	if err := x.sw.Flush(); err != nil {
		return err
	}
	_, err := x.f.WriteTo(x.w)
	return err
}
