// Package tabular reads and writes the file formats of bulk import and
// export: CSV, JSON Lines and XLSX. Readers stream one row at a time with
// constant memory (an XLSX workbook is first spooled to a temporary file,
// since the format needs random access); writers stream the same way.
//
// Row numbers are where a person finds the row in the file: the line of a
// CSV record or of a JSON Lines object (the header is line 1), and the
// sheet row of an XLSX cell range.
package tabular

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Format is a file format.
type Format string

// The supported formats.
const (
	CSV   Format = "csv"
	JSONL Format = "jsonl"
	XLSX  Format = "xlsx"
)

// Ext returns the file name extension of f, with its dot.
func (f Format) Ext() string { return "." + string(f) }

// ContentType returns the media type of f.
func (f Format) ContentType() string {
	switch f {
	case JSONL:
		return "application/x-ndjson"
	case XLSX:
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	return "text/csv"
}

// ParseFormat accepts csv, jsonl (or ndjson) and xlsx; "" means CSV.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "csv":
		return CSV, nil
	case "jsonl", "ndjson", "jsonlines":
		return JSONL, nil
	case "xlsx":
		return XLSX, nil
	}
	return "", fmt.Errorf("unknown format %q (want csv, jsonl or xlsx)", s)
}

// ErrEmpty is returned by Open for a file with no content at all.
var ErrEmpty = errors.New("the file is empty (no header row)")

// Options shape a Reader. Zero fields take their defaults.
type Options struct {
	// Format forces a format; the content still wins when it is plainly a
	// ZIP (XLSX) file. Defaults to the file name's extension, then CSV.
	Format Format
	// FileName is used to guess the format.
	FileName string
	// Delimiter separates CSV fields. Defaults to ','.
	Delimiter rune
	// Encoding of a CSV file: utf-8, latin1 (iso-8859-1) or windows-1252.
	// Defaults to utf-8.
	Encoding string
	// Sheet is the XLSX sheet to read. Defaults to the first sheet.
	Sheet string
	// TempDir is where an XLSX workbook is spooled. Defaults to os.TempDir.
	TempDir string
	// Limits bound rows and workbooks. Zero fields take their defaults.
	Limits Limits
}

// Row is one record of the input. Exactly one of Cells (CSV, XLSX) or
// Record (JSON Lines) is set, unless Err is.
type Row struct {
	// Num is the row's line (CSV, JSON Lines) or sheet row (XLSX).
	Num int
	// Cells are the row's values in header order.
	Cells []string
	// Quoted tells, for each of Cells, whether the CSV field was quoted:
	// an empty quoted field ("") is the empty string, an empty unquoted
	// one is NULL. Nil for XLSX, where both are an empty cell.
	Quoted []bool
	// Record is a JSON Lines object, numbers as json.Number.
	Record map[string]any
	// Raw is the JSON Lines source line (for error reports).
	Raw string
	// Err is a problem with this row only (wrong field count, invalid
	// UTF-8, bad JSON); reading goes on with the next row.
	Err error
}

// Reader streams the rows of a file. Next returns io.EOF after the last row;
// any other error from Next means the file cannot be read further.
type Reader interface {
	// Format is the format the file was read as.
	Format() Format
	// Header is the column names of a CSV or XLSX file; nil for JSON Lines.
	Header() []string
	// Next returns the next row.
	Next() (Row, error)
	// Close releases temporary files; it does not close the source.
	Close() error
}

// Counter is a Reader that knows, before reading them, how many rows its
// file declares: an XLSX sheet whose dimension (<dimension ref="A1:F300001">)
// is present. The count is the file's claim, not a promise: blank rows are
// skipped and a writer may have left the dimension stale.
type Counter interface {
	// DeclaredRows is the number of rows below the header, and false
	// when the file does not say.
	DeclaredRows() (int64, bool)
}

// SyntaxError is a file that breaks its format where reading cannot go on,
// such as a CSV quote left open.
type SyntaxError struct {
	Line int
	Err  error
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *SyntaxError) Unwrap() error { return e.Err }

var (
	zipMagic = []byte("PK\x03\x04")
	oleMagic = []byte{0xD0, 0xCF, 0x11, 0xE0}
	gzMagic  = []byte{0x1F, 0x8B}
)

// Open sniffs r and returns a reader for its format. The content decides
// over the name: an XLSX workbook named .csv is read as XLSX, a file named
// .xlsx that is not a ZIP archive is refused.
func Open(r io.Reader, o Options) (Reader, error) {
	o.Limits = o.Limits.WithDefaults()
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if len(head) == 0 {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, ErrEmpty
	}
	switch {
	case bytes.HasPrefix(head, zipMagic):
		return openXLSX(br, o)
	case bytes.HasPrefix(head, oleMagic):
		return nil, errors.New("the file is a legacy Excel (.xls) workbook: save it as .xlsx or .csv")
	case bytes.HasPrefix(head, gzMagic):
		return nil, errors.New("the file is gzip-compressed: upload it uncompressed")
	}
	f := o.Format
	if f == "" {
		switch strings.ToLower(path.Ext(o.FileName)) {
		case ".jsonl", ".ndjson", ".json":
			f = JSONL
		case ".xlsx", ".xlsm":
			f = XLSX
		default:
			f = CSV
		}
	}
	switch f {
	case XLSX:
		return nil, errors.New("the file is not an XLSX workbook (no ZIP signature)")
	case JSONL:
		return newJSONL(br, o.Limits), nil
	}
	return newCSV(br, o)
}
