package tabular

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

type jsonlReader struct {
	br   *bufio.Reader
	line int
	buf  []byte
}

func newJSONL(br *bufio.Reader) Reader { return &jsonlReader{br: br} }

func (r *jsonlReader) Format() Format   { return JSONL }
func (r *jsonlReader) Header() []string { return nil }
func (r *jsonlReader) Close() error     { return nil }

func (r *jsonlReader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, chunk...)
		if len(r.buf) > RowSizeMax {
			return nil, &SyntaxError{Line: r.line + 1, Err: fmt.Errorf("a line is longer than %d bytes", RowSizeMax)}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(r.buf) > 0 {
			return r.buf, nil
		}
		return r.buf, err
	}
}

func (r *jsonlReader) Next() (Row, error) {
	for {
		b, err := r.readLine()
		if err != nil {
			return Row{}, err
		}
		r.line++
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		row := Row{Num: r.line, Raw: string(b)}
		if !utf8.Valid(b) {
			row.Raw = string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
			row.Err = errors.New("not valid UTF-8")
			return row, nil
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			row.Err = fmt.Errorf("not a JSON object: %v", err)
			return row, nil
		}
		if dec.More() {
			row.Err = errors.New("more than one JSON value on the line")
			return row, nil
		}
		if rec == nil {
			row.Err = errors.New("not a JSON object: null")
			return row, nil
		}
		row.Record = rec
		return row, nil
	}
}
