package bulk

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk/tabular"
	"github.com/commonops/commonops/worker"
)

func formatValue(v any) string { return tabular.FormatCell(v) }

func openSQLSink(ctx context.Context, e *Entity) (Sink, error) {
	if e.Sink.Driver == "sqlite" {
		return openSQLiteSink(ctx, e)
	}
	return openPostgresSink(ctx, e)
}

// writableColumns is the entity's Columns, all of which the table must have.
func writableColumns(e *Entity, table string, have []string) ([]string, error) {
	for _, c := range e.Columns {
		if !slices.Contains(have, c) {
			return nil, worker.Permanent(commonops.Errorf(commonops.EINVALID, "table %s has no column %s", table, c))
		}
	}
	return e.Columns, nil
}

// postgresSink first tries each batch as one plain COPY into the table, in
// text format (so each value goes through the column type's input function,
// as the casts below do): that is an upsert as long as no key of the batch
// is in the table yet or twice in the batch, the common case of a first
// load. When a COPY meets a key that is there (a unique violation), it
// stops trying and, from that batch on, stages each batch with COPY into a
// temporary table of text columns, then upserts from it with INSERT ... ON
// CONFLICT, casting each column to the table's type. Within a batch the last
// record of a key wins.
type postgresSink struct {
	conn   *pgx.Conn
	e      *Entity
	cols   []string
	types  []string
	upsert string
	single string

	direct       bool   // plain COPY has not met an existing key yet
	copySQL      string // COPY table (cols) FROM STDIN
	stageCopySQL string // COPY stageTable (ord, cols) FROM STDIN
	buf          []byte // records of a batch in COPY text format, reused

	// upsertOutcomes is upsert that leaves unchanged rows alone and returns
	// the staging ord of each row it created or updated, with which;
	// singleOutcome is single that returns whether it created its row.
	upsertOutcomes string
	singleOutcome  string
}

const stageTable = "commonops_stage"

func openPostgresSink(ctx context.Context, e *Entity) (Sink, error) {
	cfg := e.Sink
	conn, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return nil, unavailable("the database", err)
	}
	s := &postgresSink{conn: conn, e: e, direct: true}
	if err := s.prepare(ctx); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return s, nil
}

func (s *postgresSink) prepare(ctx context.Context) error {
	table := s.e.Sink.Table
	if s.e.Sink.CreateTable {
		if _, err := s.conn.Exec(ctx, createTableSQL("postgres", table, s.e)); err != nil {
			return pgError("create table "+table, err)
		}
	}
	rows, err := s.conn.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, quoteIdent(table))
	if err != nil {
		return pgError("read table "+table, err)
	}
	types := map[string]string{}
	var names []string
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return pgError("read table "+table, err)
		}
		types[n] = t
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return pgError("read table "+table, err)
	}
	if len(names) == 0 {
		return worker.Permanent(commonops.Errorf(commonops.EINVALID, "table %s does not exist (set createTable: true to create it)", table))
	}
	if s.cols, err = writableColumns(s.e, table, names); err != nil {
		return err
	}
	var stageCols, casts, params []string
	for i, c := range s.cols {
		s.types = append(s.types, types[c])
		stageCols = append(stageCols, quoteIdent(c)+" text")
		casts = append(casts, fmt.Sprintf("%s::%s AS %s", quoteIdent(c), types[c], quoteIdent(c)))
		params = append(params, fmt.Sprintf("$%d::%s", i+1, types[c]))
	}
	if _, err := s.conn.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (ord bigint, %s) ON COMMIT DELETE ROWS",
		stageTable, strings.Join(stageCols, ", "))); err != nil {
		return pgError("create staging table", err)
	}
	conflict := fmt.Sprintf("ON CONFLICT (%s) %s", quoteIdents(s.e.Key), upsertSet(s.cols, s.e.Key))
	s.upsert = fmt.Sprintf("INSERT INTO %s (%s) SELECT DISTINCT ON (%s) %s FROM %s ORDER BY %s, ord DESC %s",
		quoteIdent(table), quoteIdents(s.cols), quoteIdents(s.e.Key), strings.Join(casts, ", "),
		stageTable, quoteIdents(s.e.Key), conflict)
	s.single = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) %s", quoteIdent(table), quoteIdents(s.cols),
		strings.Join(params, ", "), conflict)
	s.copySQL = fmt.Sprintf("COPY %s (%s) FROM STDIN", quoteIdent(table), quoteIdents(s.cols))
	s.stageCopySQL = fmt.Sprintf("COPY %s (ord, %s) FROM STDIN", stageTable, quoteIdents(s.cols))
	changed := conflict + changedWhere(table, s.cols, s.e.Key, "IS DISTINCT FROM")
	var join []string
	for _, k := range s.e.Key {
		join = append(join, fmt.Sprintf("src.%s = ins.%s", quoteIdent(k), quoteIdent(k)))
	}
	s.upsertOutcomes = fmt.Sprintf(`WITH src AS (SELECT DISTINCT ON (%s) ord, %s FROM %s ORDER BY %s, ord DESC),
		ins AS (INSERT INTO %s (%s) SELECT %s FROM src %s RETURNING %s, (xmax = 0) AS created)
		SELECT src.ord, ins.created FROM src JOIN ins ON %s`,
		quoteIdents(s.e.Key), strings.Join(casts, ", "), stageTable, quoteIdents(s.e.Key),
		quoteIdent(table), quoteIdents(s.cols), quoteIdents(s.cols), changed, quoteIdents(s.e.Key), strings.Join(join, " AND "))
	s.singleOutcome = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) %s RETURNING (xmax = 0)", quoteIdent(table), quoteIdents(s.cols),
		strings.Join(params, ", "), changed)
	// A plain COPY is only safe when a unique index on exactly the key makes
	// it fail on a key already there (the cue to upsert instead); without
	// one it would store a re-imported or replayed row twice.
	var unique bool
	if err := s.conn.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_index i
		WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
		  AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
		       FROM unnest(i.indkey) AS k(attnum) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
		      = (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) AS c))`,
		quoteIdent(table), s.e.Key).Scan(&unique); err != nil {
		return pgError("read the indexes of "+table, err)
	}
	s.direct = unique
	return nil
}

func (s *postgresSink) Write(ctx context.Context, batch []Record) ([]RecordError, error) {
	return s.WriteOutcomes(ctx, batch, nil)
}

// lineSink is a Sink that also takes each record as a line of COPY's text
// format, its values in the order of columns(): the importer writes the
// lines of the CSV and XLSX rows it coerced as it checks them, with no map
// and no boxed value a record. outcomes is nil unless the caller wants
// them (OutcomeSink).
type lineSink interface {
	columns() []string
	writeLines(ctx context.Context, lines [][]byte, outcomes []Outcome) ([]RecordError, error)
}

func (s *postgresSink) columns() []string { return s.cols }

// WriteOutcomes is Write that, when outcomes is not nil, tells what each
// record did: a batch a plain COPY stored created every row; a staged
// upsert returns the rows it created or updated, and the others of the
// staging table were unchanged.
func (s *postgresSink) WriteOutcomes(ctx context.Context, batch []Record, outcomes []Outcome) ([]RecordError, error) {
	lines := make([][]byte, len(batch))
	for i, r := range batch {
		start := len(s.buf)
		s.buf = appendRecordLine(s.buf, r, s.cols)
		lines[i] = s.buf[start:len(s.buf):len(s.buf)]
	}
	defer func() { s.buf = s.buf[:0] }()
	return s.writeLines(ctx, lines, outcomes)
}

func (s *postgresSink) writeLines(ctx context.Context, lines [][]byte, outcomes []Outcome) ([]RecordError, error) {
	if s.direct {
		done, err := s.copyDirect(ctx, lines)
		if done && outcomes != nil {
			for i := range outcomes {
				outcomes[i] = OutcomeCreated
			}
		}
		if done || err != nil {
			return nil, err
		}
	}
	return s.writeStaged(ctx, lines, outcomes)
}

// copyDirect stores a batch with one COPY into the table. It reports false
// when the database refused the batch (nothing of it is stored; a COPY is
// atomic): a key already there, or a value a column refuses, which the
// staged upsert then handles as before.
func (s *postgresSink) copyDirect(ctx context.Context, lines [][]byte) (bool, error) {
	_, err := s.conn.PgConn().CopyFrom(ctx, &copyLines{lines: lines}, s.copySQL)
	if err == nil {
		return true, nil
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Code, "22") && !strings.HasPrefix(pe.Code, "23") {
		return false, pgError("write batch", err)
	}
	if pe.Code == "23505" { // unique_violation
		s.direct = false // the table holds keys of this import: upsert from now on
	}
	return false, nil
}

// appendRecordLine appends r's values of cols to b as a line of COPY text.
func appendRecordLine(b []byte, r Record, cols []string) []byte {
	for j, col := range cols {
		if j > 0 {
			b = append(b, '\t')
		}
		if v := r[col]; v != nil {
			b = appendCopyText(b, formatValue(v))
		} else {
			b = append(b, `\N`...)
		}
	}
	return append(b, '\n')
}

// copyLines reads lines of COPY text end to end; with ord, each line is
// preceded by its index and a tab (the staging table's first column).
type copyLines struct {
	lines [][]byte
	ord   bool
	next  int    // the next line to read
	off   int    // bytes of it read
	pre   []byte // its index, when ord
}

func (c *copyLines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && c.next < len(c.lines) {
		if c.ord && c.off == 0 && c.pre == nil {
			c.pre = append(strconv.AppendInt(make([]byte, 0, 24), int64(c.next), 10), '\t')
		}
		if len(c.pre) > 0 {
			k := copy(p[n:], c.pre)
			n, c.pre = n+k, c.pre[k:]
			if len(c.pre) > 0 {
				break
			}
		}
		l := c.lines[c.next]
		k := copy(p[n:], l[c.off:])
		n, c.off = n+k, c.off+k
		if c.off == len(l) {
			c.next, c.off, c.pre = c.next+1, 0, nil
		}
	}
	if n == 0 && c.next == len(c.lines) {
		return 0, io.EOF
	}
	return n, nil
}

// appendCopyText appends a value escaped for COPY's text format.
func appendCopyText(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, c)
		}
	}
	return b
}

// copyValues reads a line of COPY text back into its values: strings, or
// nil for NULL.
func copyValues(line []byte) []any {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var vals []any
	for field := range bytes.SplitSeq(line, []byte{'\t'}) {
		if string(field) == `\N` {
			vals = append(vals, nil)
			continue
		}
		v := make([]byte, 0, len(field))
		for i := 0; i < len(field); i++ {
			c := field[i]
			if c == '\\' && i+1 < len(field) {
				i++
				switch field[i] {
				case 'n':
					c = '\n'
				case 'r':
					c = '\r'
				case 't':
					c = '\t'
				default:
					c = field[i]
				}
			}
			v = append(v, c)
		}
		vals = append(vals, string(v))
	}
	return vals
}

// writeStaged upserts a batch through the staging table.
func (s *postgresSink) writeStaged(ctx context.Context, lines [][]byte, outcomes []Outcome) ([]RecordError, error) {
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, &copyLines{lines: lines, ord: true}, s.stageCopySQL); err != nil {
			return err
		}
		if outcomes == nil {
			_, err := tx.Exec(ctx, s.upsert)
			return err
		}
		for i := range outcomes {
			outcomes[i] = OutcomeUnchanged
		}
		rows, err := tx.Query(ctx, s.upsertOutcomes)
		if err != nil {
			return err
		}
		var ord int64
		var created bool
		_, err = pgx.ForEachRow(rows, []any{&ord, &created}, func() error {
			outcomes[ord] = OutcomeUpdated
			if created {
				outcomes[ord] = OutcomeCreated
			}
			return nil
		})
		return err
	})
	if err == nil {
		return nil, nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")) {
		return s.writeOneByOne(ctx, lines, outcomes)
	}
	return nil, pgError("write batch", err)
}

// writeOneByOne stores a batch that a record broke (a value the column
// refuses), each record under a savepoint, to tell the bad ones apart.
func (s *postgresSink) writeOneByOne(ctx context.Context, lines [][]byte, outcomes []Outcome) ([]RecordError, error) {
	var recErrs []RecordError
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		for i, line := range lines {
			args := copyValues(line)
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				if outcomes == nil {
					_, err := sp.Exec(ctx, s.single, args...)
					return err
				}
				var created bool
				err := sp.QueryRow(ctx, s.singleOutcome, args...).Scan(&created)
				switch {
				case errors.Is(err, pgx.ErrNoRows):
					outcomes[i] = OutcomeUnchanged
				case err != nil:
					return err
				case created:
					outcomes[i] = OutcomeCreated
				default:
					outcomes[i] = OutcomeUpdated
				}
				return nil
			})
			var pe *pgconn.PgError
			if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")) {
				recErrs = append(recErrs, RecordError{Index: i, Message: pe.Message})
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, pgError("write batch", err)
	}
	return recErrs, nil
}

func (s *postgresSink) Close() error { return s.conn.Close(context.Background()) }

// pgError tells a database that is down or busy (retry the attempt) from one
// that refuses what it was asked (fail the task).
func pgError(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "40", "53", "57", "58":
			return unavailable("the database", fmt.Errorf("%s: %w", what, err))
		}
		return worker.Permanent(&commonops.Error{Code: commonops.EINVALID, Message: what + ": " + pe.Message, Err: err})
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return unavailable("the database", fmt.Errorf("%s: %w", what, err))
}

// sqliteSink upserts each batch in one transaction with a prepared
// INSERT ... ON CONFLICT DO UPDATE.
type sqliteSink struct {
	db     *sql.DB
	e      *Entity
	cols   []string
	upsert string
	// exists finds a key, and upsertChanged leaves a row that holds the
	// record's values already alone: the outcome of each record.
	exists        string
	upsertChanged string
}

func openSQLiteSink(ctx context.Context, e *Entity) (Sink, error) {
	db, err := openSQLite(e.Sink.DSN)
	if err != nil {
		return nil, unavailable("the database", err)
	}
	s := &sqliteSink{db: db, e: e}
	if err := s.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqliteSink) prepare(ctx context.Context) error {
	table := s.e.Sink.Table
	if s.e.Sink.CreateTable {
		if _, err := s.db.ExecContext(ctx, createTableSQL("sqlite", table, s.e)); err != nil {
			return sqliteError("create table "+table, err)
		}
	}
	rows, err := s.db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return sqliteError("read table "+table, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return sqliteError("read table "+table, err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return sqliteError("read table "+table, err)
	}
	if len(names) == 0 {
		return worker.Permanent(commonops.Errorf(commonops.EINVALID, "table %s does not exist (set createTable: true to create it)", table))
	}
	if s.cols, err = writableColumns(s.e, table, names); err != nil {
		return err
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(s.cols)), ", ")
	s.upsert = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) %s", quoteIdent(table),
		quoteIdents(s.cols), marks, quoteIdents(s.e.Key), upsertSet(s.cols, s.e.Key))
	s.upsertChanged = s.upsert + changedWhere(table, s.cols, s.e.Key, "IS NOT")
	var keyEq []string
	for _, k := range s.e.Key {
		keyEq = append(keyEq, quoteIdent(k)+" = ?")
	}
	s.exists = fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", quoteIdent(table), strings.Join(keyEq, " AND "))
	return nil
}

func (s *sqliteSink) Write(ctx context.Context, batch []Record) ([]RecordError, error) {
	return s.WriteOutcomes(ctx, batch, nil)
}

// WriteOutcomes is Write that, when outcomes is not nil, looks each key up
// before its upsert: absent, the record created its row; present, it
// updated it, or left it unchanged when the upsert changed no row.
func (s *sqliteSink) WriteOutcomes(ctx context.Context, batch []Record, outcomes []Outcome) ([]RecordError, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, sqliteError("write batch", err)
	}
	defer tx.Rollback()
	upsert := s.upsert
	var exists *sql.Stmt
	if outcomes != nil {
		upsert = s.upsertChanged
		if exists, err = tx.PrepareContext(ctx, s.exists); err != nil {
			return nil, sqliteError("write batch", err)
		}
		defer exists.Close()
	}
	stmt, err := tx.PrepareContext(ctx, upsert)
	if err != nil {
		return nil, sqliteError("write batch", err)
	}
	defer stmt.Close()
	var recErrs []RecordError
	args := make([]any, len(s.cols))
	keyArgs := make([]any, len(s.e.Key))
	for i, r := range batch {
		for j, c := range s.cols {
			args[j] = sqlValue(r[c])
		}
		var found bool
		if exists != nil {
			for j, k := range s.e.Key {
				keyArgs[j] = sqlValue(r[k])
			}
			if err := exists.QueryRowContext(ctx, keyArgs...).Scan(&found); err != nil {
				return nil, sqliteError("write batch", err)
			}
		}
		res, err := stmt.ExecContext(ctx, args...)
		if err == nil && exists != nil {
			n, _ := res.RowsAffected()
			switch {
			case !found:
				outcomes[i] = OutcomeCreated
			case n == 0:
				outcomes[i] = OutcomeUnchanged
			default:
				outcomes[i] = OutcomeUpdated
			}
		}
		if err != nil {
			var se *sqlite.Error
			if errors.As(err, &se) && se.Code()&0xff == 19 { // SQLITE_CONSTRAINT: this record's fault
				recErrs = append(recErrs, RecordError{Index: i, Message: se.Error()})
				continue
			}
			return nil, sqliteError("write batch", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, sqliteError("write batch", err)
	}
	return recErrs, nil
}

func (s *sqliteSink) Close() error { return s.db.Close() }

func sqliteError(what string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6, 10, 13, 14: // BUSY, LOCKED, IOERR, FULL, CANTOPEN
			return unavailable("the database", fmt.Errorf("%s: %w", what, err))
		}
		return worker.Permanent(&commonops.Error{Code: commonops.EINVALID, Message: what + ": " + se.Error(), Err: err})
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return unavailable("the database", fmt.Errorf("%s: %w", what, err))
}
