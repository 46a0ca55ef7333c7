package tabular

import (
	"archive/zip"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The XLSX library (excelize) reads every part of a workbook whole into
// memory, except worksheets and the shared strings table over
// xlsxInMemoryMax, which it spools to temporary files and streams. These
// bound what it holds.
const (
	// xlsxInMemoryMax is excelize's UnzipXMLSizeLimit: a worksheet or
	// shared strings table up to this size is decoded in memory. Its
	// default, 16 MiB, lets a table of tiny strings decode to ~200 MB.
	xlsxInMemoryMax = 1 << 20
	// xlsxMemoryMax bounds the parts excelize holds in memory, together:
	// styles, workbook, relationships, themes, images, small sheets.
	xlsxMemoryMax = 64 << 20
	// xlsxRatioFloor is the size past which a part's compression ratio is
	// checked. Real sheets compress 5 to 30 times (measured on generated
	// and exported workbooks); deflate reaches 1,000 on repeated bytes.
	// Small parts may compress better, but cannot hurt.
	xlsxRatioFloor = 8 << 20
)

// checkXLSX reads the workbook at path once before excelize opens it, and
// refuses it when a part breaks l: each part's declared size, compression
// ratio and real size (the bytes are counted while inflating, so a header
// that lies does not help), the length of every XML token, cell, row and
// shared string, and the counts of cells and shared strings.
func checkXLSX(path string, l Limits) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("the file is a ZIP archive but not a readable XLSX workbook: %w", err)
	}
	defer zr.Close()
	var total, inMemory int64
	for _, f := range zr.File {
		name := strings.ReplaceAll(f.Name, `\`, "/")
		lower := strings.ToLower(name)
		isSST := lower == "xl/sharedstrings.xml"
		size := int64(f.UncompressedSize64)
		if f.UncompressedSize64 > uint64(l.MaxXLSXEntryBytes) {
			return limitErr("maxXLSXEntryBytes", "the workbook's part %s expands to %s, more than the %s part limit",
				name, Size(int64(min(f.UncompressedSize64, 1<<62))), Size(l.MaxXLSXEntryBytes))
		}
		if isSST && size > l.MaxSharedStringBytes {
			return limitErr("maxSharedStringBytes", "the workbook's shared strings expand to %s, more than the %s limit",
				Size(size), Size(l.MaxSharedStringBytes))
		}
		if size > xlsxRatioFloor && uint64(size) > f.CompressedSize64*uint64(l.MaxXLSXRatio) {
			return limitErr("maxXLSXRatio", "the workbook's part %s expands %d times (%s from %s), more than the %d:1 compression limit",
				name, uint64(size)/max(f.CompressedSize64, 1), Size(size), Size(int64(f.CompressedSize64)), l.MaxXLSXRatio)
		}
		if total += size; total > 2*l.MaxXLSXEntryBytes {
			return limitErr("maxXLSXEntryBytes", "the workbook expands to more than %s in all, twice the part limit", Size(2*l.MaxXLSXEntryBytes))
		}
		streamed := (isSST || strings.HasPrefix(lower, "xl/worksheets/sheet")) && size > xlsxInMemoryMax
		if !streamed && !f.FileInfo().IsDir() {
			if inMemory += size; inMemory > xlsxMemoryMax {
				return fmt.Errorf("the workbook's parts other than large sheets and shared strings expand to more than %s, which the XLSX reader would hold in memory", Size(xlsxMemoryMax))
			}
		}
		if err := checkPart(f, name, isSST, l); err != nil {
			return err
		}
	}
	return nil
}

// checkPart inflates one part and scans it when it is XML.
func checkPart(f *zip.File, name string, isSST bool, l Limits) error {
	if f.FileInfo().IsDir() {
		return nil
	}
	raw, err := f.OpenRaw()
	if err != nil {
		return fmt.Errorf("the workbook's part %s: %w", name, err)
	}
	var rd io.Reader
	switch f.Method {
	case zip.Store:
		rd = raw
	case zip.Deflate:
		fr := flate.NewReader(raw)
		defer fr.Close()
		rd = fr
	default:
		return fmt.Errorf("the workbook's part %s uses compression method %d (want deflate or none)", name, f.Method)
	}
	declared := int64(f.UncompressedSize64)
	var scan *xmlScan
	if lower := strings.ToLower(name); strings.HasSuffix(lower, ".xml") || strings.HasSuffix(lower, ".rels") {
		scan = &xmlScan{l: l, part: name, sst: isSST, rowLen: -1, cellLen: -1, siLen: -1}
	}
	buf := make([]byte, 64<<10)
	var n int64
	lr := io.LimitReader(rd, declared+1) // one byte past the header is enough to catch it lying
	for {
		k, err := lr.Read(buf)
		if n += int64(k); n > declared {
			return fmt.Errorf("the workbook's part %s holds more than the %d bytes its header declares", name, declared)
		}
		if scan != nil {
			if serr := scan.write(buf[:k]); serr != nil {
				return serr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, flate.CorruptInputError(0)) {
				return fmt.Errorf("the workbook's part %s is corrupt: %w", name, err)
			}
			return fmt.Errorf("the workbook's part %s: %w", name, err)
		}
	}
}

// xmlScan follows the XML of one part byte by byte, just enough to bound
// what encoding/xml (which excelize decodes with) would buffer: each token
// (text, tag, comment, CDATA section, processing instruction), each cell,
// row and shared string, and the counts of cells and shared strings. It
// does not check that the XML is well formed, but refuses what would make
// the decoder see other tokens than it does: a directive (DOCTYPE, whose
// end it does not follow) and an encoding in which '<' is not that byte.
type xmlScan struct {
	l    Limits
	part string
	sst  bool

	state   scanState
	off     int64  // bytes scanned
	tokLen  int64  // bytes of the current token
	head    []byte // bytes after '<', up to 9, to tell the token kind
	name    []byte // the tag's name (without its prefix), up to 16 bytes
	named   bool   // the tag's name is complete
	endTag  bool
	slash   bool   // the last byte of the tag was '/'
	quote   byte   // the quote of the attribute value the tag is in, or 0
	run     int    // '-', ']' or '?' just before, in a comment, CDATA or PI
	pi      []byte // the start of a processing instruction
	rows    int64  // <row> elements so far
	cells   int64  // <c> elements so far
	cellCol int64  // <c> elements in the current row
	sis     int64  // <si> elements so far
	rowLen  int64  // bytes of the open row, or -1
	cellLen int64  // bytes of the open cell, or -1
	siLen   int64  // bytes of the open shared string, or -1
}

type scanState uint8

const (
	sText scanState = iota
	sOpen           // after '<', until the kind of token is known
	sTag
	sComment
	sCDATA
	sPI
)

func (s *xmlScan) write(p []byte) error {
	for _, c := range p {
		s.off++
		s.tokLen++
		if s.rowLen >= 0 {
			s.rowLen++
		}
		if s.cellLen >= 0 {
			s.cellLen++
		}
		if s.siLen >= 0 {
			s.siLen++
		}
		if err := s.step(c); err != nil {
			return err
		}
		switch max := s.l.MaxFieldBytes; {
		case s.cellLen > max:
			return limitErr("maxFieldBytes", "row %d, cell %d is longer than the %s field limit", s.rows, s.cellCol, Size(max))
		case s.siLen > max:
			return limitErr("maxFieldBytes", "shared string %d is longer than the %s field limit", s.sis, Size(max))
		case s.rowLen > s.l.MaxRecordBytes:
			return limitErr("maxRecordBytes", "row %d is longer than the %s record limit", s.rows, Size(s.l.MaxRecordBytes))
		case s.tokLen > max:
			return limitErr("maxFieldBytes", "the workbook's part %s has an XML token at byte %d longer than the %s field limit", s.part, s.off-s.tokLen+1, Size(max))
		}
	}
	return nil
}

// step moves the scanner past c.
func (s *xmlScan) step(c byte) error {
	switch s.state {
	case sText:
		if c == '<' {
			s.state, s.tokLen, s.head = sOpen, 1, s.head[:0]
		}
	case sOpen:
		s.head = append(s.head, c)
		h := string(s.head)
		switch {
		case h == "?":
			s.state, s.run, s.pi = sPI, 0, s.pi[:0]
		case h == "!--":
			s.state, s.run = sComment, 0
		case h == "![CDATA[":
			s.state, s.run = sCDATA, 0
		case h[0] == '!' && !strings.HasPrefix("!--", h) && !strings.HasPrefix("![CDATA[", h):
			return fmt.Errorf("the workbook's part %s has an XML directive (<!%s...), which no workbook needs", s.part, h[1:])
		case h[0] != '!':
			s.state, s.name, s.named, s.endTag, s.quote = sTag, s.name[:0], false, c == '/', 0
			if c != '/' {
				return s.stepTag(c)
			}
		}
	case sTag:
		return s.stepTag(c)
	case sComment: // ends at "-->", the dashes after "<!--"
		s.endAt(c, '-', 2)
	case sCDATA: // ends at "]]>"
		s.endAt(c, ']', 2)
	case sPI: // ends at "?>", the '?' after "<?"
		if len(s.pi) < 1024 {
			s.pi = append(s.pi, c)
		}
		if s.endAt(c, '?', 1) {
			return s.checkPI()
		}
	}
	return nil
}

// endAt ends the token at a '>' that follows n or more bytes b.
func (s *xmlScan) endAt(c, b byte, n int) bool {
	switch {
	case c == '>' && s.run >= n:
		s.endToken()
		return true
	case c == b:
		s.run++
	default:
		s.run = 0
	}
	return false
}

// checkPI refuses an XML declaration whose encoding encoding/xml would
// switch to and in which the scanner, reading bytes, would misplace tags.
func (s *xmlScan) checkPI() error {
	pi := string(s.pi)
	if !strings.HasPrefix(pi, "xml") || len(pi) > 3 && !strings.ContainsRune(" \t\r\n?", rune(pi[3])) {
		return nil
	}
	if len(s.pi) == 1024 {
		return fmt.Errorf("the workbook's part %s has an XML declaration longer than 1 KiB", s.part)
	}
	_, enc, ok := strings.Cut(pi, "encoding")
	if !ok {
		return nil
	}
	enc = strings.TrimLeft(enc, " \t\r\n=")
	if enc != "" && (enc[0] == '"' || enc[0] == '\'') {
		if end := strings.IndexByte(enc[1:], enc[0]); end >= 0 {
			enc = enc[1 : end+1]
		}
	}
	switch strings.ToLower(enc) {
	case "utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin1", "windows-1252":
		return nil
	}
	return fmt.Errorf("the workbook's part %s declares the encoding %s: only UTF-8 (or ASCII, latin1) is read", s.part, quoteName(enc))
}

func (s *xmlScan) endToken() { s.state, s.tokLen = sText, 0 }

func (s *xmlScan) stepTag(c byte) error {
	if s.quote != 0 {
		if c == s.quote {
			s.quote = 0
		}
		return nil
	}
	switch {
	case c == '"' || c == '\'':
		s.quote, s.named, s.slash = c, true, false
	case c == '>':
		tag := s.tokLen
		s.endToken()
		return s.element(tag)
	case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/':
		s.named = true
	case !s.named && c == ':':
		s.name = s.name[:0] // drop the prefix
	case !s.named && len(s.name) < 16:
		s.name = append(s.name, c)
	}
	s.slash = c == '/'
	return nil
}

// element accounts for the tag of tagLen bytes that just ended.
func (s *xmlScan) element(tagLen int64) error {
	selfClosing := s.slash
	switch string(s.name) {
	case "row":
		switch {
		case s.endTag:
			s.rowLen = -1
		default:
			s.rows++
			s.cellCol = 0
			if !selfClosing {
				s.rowLen = tagLen
			}
		}
	case "c":
		switch {
		case s.endTag:
			s.cellLen = -1
		default:
			s.cells++
			s.cellCol++
			if s.cells > s.l.MaxXLSXCells {
				return limitErr("maxXLSXCells", "the workbook's part %s has more than %d cells, the limit", s.part, s.l.MaxXLSXCells)
			}
			if !selfClosing {
				s.cellLen = tagLen
			}
		}
	case "si":
		if !s.sst {
			break
		}
		switch {
		case s.endTag:
			s.siLen = -1
		default:
			s.sis++
			if s.sis > s.l.MaxSharedStrings {
				return limitErr("maxSharedStrings", "the workbook has more than %d shared strings, the limit", s.l.MaxSharedStrings)
			}
			if !selfClosing {
				s.siLen = tagLen
			}
		}
	}
	return nil
}
