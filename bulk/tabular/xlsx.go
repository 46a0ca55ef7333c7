package tabular

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/xuri/excelize/v2"
)

type xlsxReader struct {
	tmp    string
	f      *excelize.File
	rows   *excelize.Rows
	num    int
	header []string
	last   int // the last row of the sheet's dimension; 0 when absent
	head   int // the header's row
}

// openXLSX spools r to a temporary file (XLSX needs random access), checks
// the workbook against o.Limits and streams the chosen sheet's rows from it.
func openXLSX(r io.Reader, o Options) (Reader, error) {
	tmp, err := os.CreateTemp(o.TempDir, "commonops-import-*.xlsx")
	if err != nil {
		return nil, fmt.Errorf("spool workbook: %w", err)
	}
	x := &xlsxReader{tmp: tmp.Name()}
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		x.Close()
		return nil, fmt.Errorf("spool workbook: %w", err)
	}
	if err := tmp.Close(); err != nil {
		x.Close()
		return nil, fmt.Errorf("spool workbook: %w", err)
	}
	if err := checkXLSX(x.tmp, o.Limits); err != nil {
		x.Close()
		return nil, err
	}
	if err := x.open(o.Sheet, o); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

func (x *xlsxReader) open(sheet string, o Options) error {
	// checkXLSX has bounded every part; these are excelize's own bounds
	// on the same, a second line.
	f, err := excelize.OpenFile(x.tmp, excelize.Options{
		UnzipSizeLimit:    2 * o.Limits.MaxXLSXEntryBytes,
		UnzipXMLSizeLimit: xlsxInMemoryMax,
		TmpDir:            o.TempDir,
	})
	if err != nil {
		return fmt.Errorf("the file is a ZIP archive but not a readable XLSX workbook: %w", err)
	}
	x.f = f
	sheets := f.GetSheetList()
	if sheet == "" {
		if len(sheets) == 0 {
			return fmt.Errorf("the workbook has no sheet")
		}
		sheet = sheets[0]
	} else if !slices.Contains(sheets, sheet) {
		return fmt.Errorf("the workbook has no sheet %q (it has %s)", sheet, strings.Join(sheets, ", "))
	}
	x.last = lastRow(f, sheet)
	x.rows, err = f.Rows(sheet)
	if err != nil {
		return fmt.Errorf("read sheet %q: %w", sheet, err)
	}
	for x.rows.Next() {
		x.num++
		cells, err := x.rows.Columns()
		if err != nil {
			return &SyntaxError{Line: x.num, Err: err}
		}
		if len(cells) == 0 {
			continue // blank rows above the header
		}
		seen := make(map[string]bool, len(cells))
		for _, c := range cells {
			c = strings.TrimSpace(c)
			if c != "" && seen[c] {
				return &SyntaxError{Line: x.num, Err: fmt.Errorf("header names column %q twice", c)}
			}
			seen[c] = true
			x.header = append(x.header, c)
		}
		x.head = x.num
		return nil
	}
	if err := x.rows.Error(); err != nil {
		return fmt.Errorf("read sheet %q: %w", sheet, err)
	}
	return ErrEmpty
}

// lastRow is the last row of the sheet's dimension, read from the start of
// the sheet without its rows, or 0 when it has none.
func lastRow(f *excelize.File, sheet string) int {
	ref, err := f.GetSheetDimension(sheet)
	if err != nil || ref == "" {
		return 0
	}
	_, end, _ := strings.Cut(ref, ":")
	if end == "" {
		end = ref
	}
	_, row, err := excelize.CellNameToCoordinates(end)
	if err != nil {
		return 0
	}
	return row
}

// DeclaredRows is the rows of the dimension below the header.
func (x *xlsxReader) DeclaredRows() (int64, bool) {
	if x.last <= x.head {
		return 0, false
	}
	return int64(x.last - x.head), true
}

func (x *xlsxReader) Format() Format   { return XLSX }
func (x *xlsxReader) Header() []string { return x.header }

func (x *xlsxReader) Next() (Row, error) {
	for x.rows.Next() {
		x.num++
		cells, err := x.rows.Columns()
		if err != nil {
			return Row{}, &SyntaxError{Line: x.num, Err: err}
		}
		if len(cells) == 0 {
			continue
		}
		row := Row{Num: x.num}
		if len(cells) > len(x.header) {
			extra := cells[len(x.header):]
			if slices.ContainsFunc(extra, func(s string) bool { return s != "" }) {
				row.Err = fmt.Errorf("has %d cells, the header has %d", len(cells), len(x.header))
				row.Cells = cells
				return row, nil
			}
			cells = cells[:len(x.header)]
		}
		for len(cells) < len(x.header) {
			cells = append(cells, "") // trailing empty cells are not stored
		}
		row.Cells = cells
		return row, nil
	}
	if err := x.rows.Error(); err != nil {
		return Row{}, &SyntaxError{Line: x.num, Err: err}
	}
	return Row{}, io.EOF
}

func (x *xlsxReader) Close() error {
	var err error
	if x.rows != nil {
		err = x.rows.Close()
	}
	if x.f != nil {
		if cerr := x.f.Close(); err == nil {
			err = cerr
		}
	}
	if x.tmp != "" {
		if rerr := os.Remove(x.tmp); err == nil && !os.IsNotExist(rerr) {
			err = rerr
		}
	}
	return err
}
