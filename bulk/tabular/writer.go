package tabular

import (
	"archive/zip"
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/xuri/excelize/v2"
)

// Writer streams records to a file, one value per column in the order the
// writer was made with. Close flushes it; it does not close the destination.
type Writer interface {
	Write(values []any) error
	Close() error
}

// NewWriter returns a writer of format f over w that starts with a header
// row of columns (CSV, XLSX); JSON Lines objects use columns as keys.
func NewWriter(w io.Writer, f Format, columns []string) (Writer, error) {
	switch f {
	case CSV, "":
		cw := csv.NewWriter(w)
		if err := cw.Write(columns); err != nil {
			return nil, err
		}
		return &csvWriter{cw: cw, buf: make([]string, len(columns))}, nil
	case JSONL:
		jw := &jsonlWriter{bw: bufio.NewWriterSize(w, 64<<10)}
		for _, c := range columns {
			k, _ := json.Marshal(c)
			jw.keys = append(jw.keys, append(k, ':'))
		}
		return jw, nil
	case XLSX:
		return newXLSXWriter(w, columns)
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

type csvWriter struct {
	cw  *csv.Writer
	buf []string
}

func (c *csvWriter) Write(values []any) error {
	for i := range c.buf {
		c.buf[i] = ""
		if i < len(values) {
			c.buf[i] = FormatCell(values[i])
		}
	}
	return c.cw.Write(c.buf)
}

func (c *csvWriter) Close() error {
	c.cw.Flush()
	return c.cw.Error()
}

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

type xlsxWriter struct {
	w   io.Writer
	f   *excelize.File
	sw  *excelize.StreamWriter
	row int
	buf []any
}

func newXLSXWriter(w io.Writer, columns []string) (*xlsxWriter, error) {
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
	x := &xlsxWriter{w: w, f: f, sw: sw, buf: make([]any, len(columns))}
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
		switch t := v.(type) {
		case nil, string, bool, int, int32, int64, float32, float64:
			x.buf[i] = t
		case json.Number:
			if n, err := t.Float64(); err == nil {
				x.buf[i] = n
			} else {
				x.buf[i] = t.String()
			}
		default:
			x.buf[i] = FormatCell(t)
		}
	}
	return x.setRow(x.buf)
}

func (x *xlsxWriter) Close() error {
	defer x.f.Close()
	if err := x.sw.Flush(); err != nil {
		return err
	}
	_, err := x.f.WriteTo(x.w)
	return err
}
