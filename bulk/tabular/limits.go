package tabular

import (
	"fmt"
	"strconv"
)

// Limits bound what one row and one workbook may hold, so that a hostile or
// broken file fails at once with a LimitError instead of exhausting memory
// or disk. Zero fields take their defaults. The YAML names are the keys of
// an entity's import block in bulk's configuration.
type Limits struct {
	// MaxFieldBytes bounds one CSV field, one top-level JSON Lines string
	// and one XLSX cell or shared string (as XML). Defaults to
	// MaxFieldBytesDefault (1 MiB, so that by default only the record
	// limit binds: set it lower to refuse long cells).
	MaxFieldBytes int64 `yaml:"maxFieldBytes"`
	// MaxRecordBytes bounds one CSV record, one JSON Lines line and one
	// XLSX row (as XML). Defaults to MaxRecordBytesDefault (1 MiB).
	MaxRecordBytes int64 `yaml:"maxRecordBytes"`
	// MaxXLSXCells bounds the cells of each worksheet. Defaults to
	// MaxXLSXCellsDefault (50,000,000).
	MaxXLSXCells int64 `yaml:"maxXLSXCells"`
	// MaxXLSXEntryBytes bounds the uncompressed size of each part of an
	// XLSX archive, both as its header declares and as it is read.
	// Defaults to MaxXLSXEntryBytesDefault (1 GiB).
	MaxXLSXEntryBytes int64 `yaml:"maxXLSXEntryBytes"`
	// MaxXLSXRatio bounds how many times a part of an XLSX archive over
	// 8 MiB (uncompressed) may expand. Defaults to MaxXLSXRatioDefault (100).
	MaxXLSXRatio int64 `yaml:"maxXLSXRatio"`
	// MaxSharedStrings bounds the entries of an XLSX shared strings table.
	// Defaults to MaxSharedStringsDefault (1,048,576).
	MaxSharedStrings int64 `yaml:"maxSharedStrings"`
	// MaxSharedStringBytes bounds the uncompressed size of an XLSX shared
	// strings table. Defaults to MaxSharedStringBytesDefault (256 MiB).
	MaxSharedStringBytes int64 `yaml:"maxSharedStringBytes"`
}

// The defaults of Limits. A record of 1 MiB is far beyond any real row
// (Excel caps a cell at 32,767 characters) yet keeps a reader's buffers,
// and the rows in flight, small. The XLSX figures admit Excel's largest
// sheet (1,048,576 rows) at a few dozen columns.
const (
	MaxFieldBytesDefault        = 1 << 20
	MaxRecordBytesDefault       = 1 << 20
	MaxXLSXCellsDefault         = 50_000_000
	MaxXLSXEntryBytesDefault    = 1 << 30
	MaxXLSXRatioDefault         = 100
	MaxSharedStringsDefault     = 1 << 20
	MaxSharedStringBytesDefault = 256 << 20
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxFieldBytes, MaxFieldBytesDefault)
	def(&l.MaxRecordBytes, MaxRecordBytesDefault)
	def(&l.MaxXLSXCells, MaxXLSXCellsDefault)
	def(&l.MaxXLSXEntryBytes, MaxXLSXEntryBytesDefault)
	def(&l.MaxXLSXRatio, MaxXLSXRatioDefault)
	def(&l.MaxSharedStrings, MaxSharedStringsDefault)
	def(&l.MaxSharedStringBytes, MaxSharedStringBytesDefault)
	return l
}

// Check refuses a negative limit, naming its setting.
func (l Limits) Check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"maxFieldBytes", l.MaxFieldBytes}, {"maxRecordBytes", l.MaxRecordBytes},
		{"maxXLSXCells", l.MaxXLSXCells}, {"maxXLSXEntryBytes", l.MaxXLSXEntryBytes},
		{"maxXLSXRatio", l.MaxXLSXRatio}, {"maxSharedStrings", l.MaxSharedStrings},
		{"maxSharedStringBytes", l.MaxSharedStringBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s: must be 0 (the default) or more, not %d", f.name, f.v)
		}
	}
	return nil
}

// LimitError is a file that breaks one of the Limits. Reading stops at
// once: the file is refused, not a row.
type LimitError struct {
	// Setting is the YAML name of the limit, such as maxRecordBytes.
	Setting string
	// Msg says what broke it, such as "row 2 is longer than the 1 MiB
	// record limit".
	Msg string
}

func (e *LimitError) Error() string { return e.Msg + " (" + e.Setting + ")" }

func limitErr(setting, format string, args ...any) error {
	return &LimitError{Setting: setting, Msg: fmt.Sprintf(format, args...)}
}

// Size renders a byte count for a message: 1 MiB, 64 KiB, 1500 bytes.
func Size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// quoteName quotes a column or key for a message, cut to a readable length.
func quoteName(s string) string {
	if len(s) > 60 {
		return strconv.Quote(s[:60]) + "…"
	}
	return strconv.Quote(s)
}
