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
	br     *bufio.Reader
	limits Limits
	line   int
	buf    []byte
}

func newJSONL(br *bufio.Reader, l Limits) Reader { return &jsonlReader{br: br, limits: l} }

func (r *jsonlReader) Format() Format   { return JSONL }
func (r *jsonlReader) Header() []string { return nil }
func (r *jsonlReader) Close() error     { return nil }

func (r *jsonlReader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, chunk...)
		if int64(len(r.buf)) > r.limits.MaxRecordBytes {
			return nil, limitErr("maxRecordBytes", "row %d is longer than the %s record limit", r.line+1, Size(r.limits.MaxRecordBytes))
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
		for k, v := range rec {
			if s, ok := v.(string); ok && int64(len(s)) > r.limits.MaxFieldBytes {
				return Row{}, limitErr("maxFieldBytes", "row %d, field %s is longer than the %s field limit", r.line, quoteName(k), Size(r.limits.MaxFieldBytes))
			}
		}
		row.Record = rec
		return row, nil
	}
}
