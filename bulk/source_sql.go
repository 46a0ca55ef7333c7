package bulk

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/worker"
)

// sqlSource runs the configured query with :name parameters bound from the
// task's params. With a keyset column it reads page by page
// (WHERE keyset > last ORDER BY keyset LIMIT n), each page a short query;
// without one it streams the query's rows in one go.
//
// Values are typed by the entity's schema (typedValue), so a column reads
// back as what the import stored, whatever the driver returns for it.
type sqlSource struct {
	cfg    *SourceConfig
	db     *sql.DB
	fields map[string]Field
}

func openSQLSource(cfg *SourceConfig, fields map[string]Field) (*sqlSource, error) {
	db, err := openSQL(cfg.Driver, cfg.DSN)
	if err != nil {
		return nil, unavailable("the export database", err)
	}
	return &sqlSource{cfg: cfg, db: db, fields: fields}, nil
}

// typedValue gives a column value the type of its schema field: a boolean
// that SQLite keeps as 0 or 1 is a boolean again, a decimal (PostgreSQL
// numeric, SQLite text) keeps its written digits as a json.Number, a date
// column is a date again, not a midnight timestamp. A value that does not
// fit its field is left as the driver returned it.
func typedValue(f Field, v any) any {
	switch f.Type {
	case "boolean":
		if n, ok := v.(int64); ok && (n == 0 || n == 1) {
			return n == 1
		}
	case "number":
		if s, ok := v.(string); ok && isJSONNumber(s) {
			return json.Number(s)
		}
	case "integer":
		if s, ok := v.(string); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n
			}
		}
	case "string":
		if t, ok := v.(time.Time); ok && f.Format == "date" {
			return t.Format(time.DateOnly)
		}
	}
	return v
}

func (s *sqlSource) Close() error { return s.db.Close() }

// bindNamed rewrites :name placeholders to the driver's ($n or ?), skipping
// string literals, quoted names and :: casts, and returns the arguments
// (nil for a param the task does not have). first is the number of the
// first placeholder ($first).
func bindNamed(query, driver string, params map[string]any, first int) (string, []any) {
	var b strings.Builder
	var args []any
	seen := map[string]int{}
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) && query[j] != c {
				j++
			}
			b.WriteString(query[i:min(j+1, len(query))])
			i = j
		case c == ':' && i+1 < len(query) && query[i+1] == ':':
			b.WriteString("::")
			i++
		case c == ':' && i+1 < len(query) && isNameStart(query[i+1]):
			j := i + 1
			for j < len(query) && (isNameStart(query[j]) || query[j] >= '0' && query[j] <= '9') {
				j++
			}
			name := query[i+1 : j]
			if driver == "sqlite" {
				b.WriteByte('?')
				args = append(args, sqlParam(params[name]))
			} else {
				n, ok := seen[name]
				if !ok {
					args = append(args, sqlParam(params[name]))
					n = first + len(args) - 1
					seen[name] = n
				}
				fmt.Fprintf(&b, "$%d", n)
			}
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), args
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// sqlParam passes JSON scalars through and other JSON values as text.
func sqlParam(v any) any {
	switch v := v.(type) {
	case nil, string, bool, float64:
		return v
	}
	return formatValue(v)
}

func (s *sqlSource) placeholder(n int) string {
	if s.cfg.Driver == "sqlite" {
		return "?"
	}
	return fmt.Sprintf("$%d", n)
}

func (s *sqlSource) Count(ctx context.Context, params map[string]any) (int64, bool, error) {
	q, args := bindNamed(s.cfg.Query, s.cfg.Driver, params, 1)
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM ("+q+") AS q", args...).Scan(&n); err != nil {
		return 0, false, sourceError(err)
	}
	return n, true, nil
}

func (s *sqlSource) Read(ctx context.Context, params map[string]any, page func([]Record) error) error {
	size := pageSize(s.cfg.PageSize)
	q, args := bindNamed(s.cfg.Query, s.cfg.Driver, params, 1)
	if s.cfg.Keyset == "" {
		_, err := s.query(ctx, q, args, size, page)
		return err
	}
	key := quoteIdent(s.cfg.Keyset)
	var after any
	for {
		var query string
		pargs := args
		if after == nil {
			query = fmt.Sprintf("SELECT * FROM (%s) AS q ORDER BY %s LIMIT %d", q, key, size)
		} else {
			pargs = append(append([]any(nil), args...), after)
			query = fmt.Sprintf("SELECT * FROM (%s) AS q WHERE %s > %s ORDER BY %s LIMIT %d", q, key, s.placeholder(len(args)+1), key, size)
		}
		last, err := s.query(ctx, query, pargs, size, page)
		if err != nil {
			return err
		}
		if last == nil {
			return nil
		}
		if after = last[s.cfg.Keyset]; after == nil {
			return worker.Permanent(commonops.Errorf(commonops.EINVALID, "export query has no keyset column %s, or it is null", s.cfg.Keyset))
		}
	}
}

// query streams one query in pages of size and returns the last record of
// the last page, or nil when the query returned fewer than size rows.
func (s *sqlSource) query(ctx context.Context, q string, args []any, size int, page func([]Record) error) (Record, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, sourceError(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, sourceError(err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	batch := make([]Record, 0, size)
	total := 0
	var last Record
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, sourceError(err)
		}
		rec := make(Record, len(cols))
		for i, c := range cols {
			v := vals[i]
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			if f, ok := s.fields[c]; ok && v != nil {
				v = typedValue(f, v)
			}
			rec[c] = v
		}
		batch = append(batch, rec)
		total++
		if len(batch) == size {
			last = batch[len(batch)-1]
			if err := page(batch); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return nil, sourceError(err)
	}
	if len(batch) > 0 {
		if err := page(batch); err != nil {
			return nil, err
		}
		return nil, nil // a short page is the last one
	}
	if total < size {
		return nil, nil
	}
	return last, nil
}

// sourceError tells a query the database refuses (fail the task) from a
// database that is down (retry).
func sourceError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return sqliteError("export query", err)
	}
	return pgError("export query", err)
}
