package bulk

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for the SQL source
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// openSQLite opens a SQLite file (creating its directory) with a busy
// timeout, so a sink and a source may share the file.
func openSQLite(dsn string) (*sql.DB, error) {
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path != "" && path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
		}
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db, err := sql.Open("sqlite", dsn+sep+"_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
	}
	return db, nil
}

// openSQL opens a database/sql handle for driver (postgres or sqlite).
func openSQL(driver, dsn string) (*sql.DB, error) {
	if driver == "sqlite" {
		return openSQLite(dsn)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return db, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIdent(n)
	}
	return strings.Join(q, ", ")
}

// columnType maps a schema field to a column type for CreateTable.
func columnType(driver string, f Field) string {
	if driver == "sqlite" {
		switch f.Type {
		case "integer", "boolean":
			return "INTEGER"
		case "number":
			// TEXT, not REAL or NUMERIC: SQLite has no decimal type and
			// would turn 4.90 into the float 4.9. The digits are kept as
			// written; SQL arithmetic on them still converts.
			return "TEXT"
		}
		return "TEXT"
	}
	switch f.Type {
	case "integer":
		return "bigint"
	case "number":
		return "numeric"
	case "boolean":
		return "boolean"
	case "array", "object":
		return "jsonb"
	case "string":
		switch f.Format {
		case "date":
			return "date"
		case "date-time":
			return "timestamptz"
		}
	}
	return "text"
}

// createTableSQL creates the entity's table from its schema: one column per
// entry of Columns, the key as primary key, required columns NOT NULL.
func createTableSQL(driver, table string, e *Entity) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", quoteIdent(table))
	for _, c := range e.Columns {
		fmt.Fprintf(&b, "%s %s", quoteIdent(c), columnType(driver, e.Fields[c]))
		for _, r := range e.Required {
			if r == c {
				b.WriteString(" NOT NULL")
				break
			}
		}
		b.WriteString(", ")
	}
	fmt.Fprintf(&b, "PRIMARY KEY (%s))", quoteIdents(e.Key))
	return b.String()
}

func upsertSet(cols, key []string) string {
	var set []string
	for _, c := range cols {
		isKey := false
		for _, k := range key {
			isKey = isKey || k == c
		}
		if !isKey {
			set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", quoteIdent(c), quoteIdent(c)))
		}
	}
	if len(set) == 0 {
		return "DO NOTHING"
	}
	return "DO UPDATE SET " + strings.Join(set, ", ")
}

// changedWhere is the WHERE of an upsert's DO UPDATE that leaves a row
// whose columns already hold the record's values untouched (so that it is
// neither written nor returned: unchanged); "" when the upsert updates
// nothing. distinct is IS DISTINCT FROM (postgres) or IS NOT (sqlite).
func changedWhere(table string, cols, key []string, distinct string) string {
	var or []string
	for _, c := range cols {
		if !slices.Contains(key, c) {
			or = append(or, fmt.Sprintf("%s.%s %s EXCLUDED.%s", quoteIdent(table), quoteIdent(c), distinct, quoteIdent(c)))
		}
	}
	if len(or) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(or, " OR ")
}

// sqlValue turns a record value into what a database/sql driver takes.
func sqlValue(v any) any {
	switch v := v.(type) {
	case nil, string, bool, int64, float64:
		return v
	case []any, map[string]any:
		return formatValue(v)
	}
	return formatValue(v)
}
