package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

var nTaskCols = len(taskColumnList)

// changeCTEs writes the task_events row, the outbox row and the webhook
// deliveries (its callback URL's and its subscriptions', for a terminal
// status) of a change for the task the CTE named src returns (srcColumns).
// Parameters from p: event type, event data, event time, topic, payload,
// traceparent (NULL for none; see commonops.TraceParent), and whether the
// topic is queued in the outbox (one of the store's Config.Topics). The
// statement's last column counts the outbox rows (SELECT count(*) FROM o).
//
// There is deliberately no pg_notify here: PostgreSQL serialises the commits
// of notifying transactions on one lock held across the WAL flush, which
// measured 294 creates/s against 2,400 without it on this machine. Relays
// in other replicas are woken by a coalesced NOTIFY sent after commit
// (see notifier).
func changeCTEs(src string, p int) string {
	return eventCTEs(src, p) + fmt.Sprintf(`,
d AS (
	INSERT INTO webhook_deliveries (tenant_id, task_id, subscription_id, url, event_type, payload, created_at, next_attempt_at)
	SELECT tenant_id, id, NULL, callback_url, $%[5]d::text, $%[6]d::json, $%[4]d::timestamptz, $%[4]d::timestamptz
	FROM %[1]s WHERE callback_url IS NOT NULL AND $%[5]d::text IN (%[8]s)
	UNION ALL
	SELECT w.tenant_id, x.id, w.id, w.url, $%[5]d::text, $%[6]d::json, $%[4]d::timestamptz, $%[4]d::timestamptz
	FROM %[1]s x JOIN webhook_subscriptions w ON w.tenant_id = x.tenant_id AND w.task_type IN (x.task_type, '*')
	WHERE $%[5]d::text IN (%[8]s)
)
`, src, p, p+1, p+2, p+3, p+4, p+5, notifyingTopics)
}

// eventCTEs are changeCTEs without the webhook deliveries, for the changes
// that never notify (a create): the statement then neither plans nor locks
// the webhook tables.
func eventCTEs(src string, p int) string {
	return fmt.Sprintf(`,
e AS (
	INSERT INTO task_events (tenant_id, task_id, task_type, entity_type, status, requested_by, event_type, event_data, created_at)
	SELECT tenant_id, id, task_type, entity_type, status, requested_by, $%[2]d::text, $%[3]d::json, $%[4]d::timestamptz FROM %[1]s WHERE $%[2]d::text <> ''
),
o AS (
	INSERT INTO outbox (tenant_id, task_id, topic, payload, traceparent)
	SELECT tenant_id, id, $%[5]d::text, $%[6]d::json, $%[7]d::text FROM %[1]s WHERE $%[5]d::text <> '' AND $%[8]d::boolean
	RETURNING 1
)`, src, p, p+1, p+2, p+3, p+4, p+5, p+6)
}

// srcColumns are what the CTE before changeCTEs returns of the task it wrote:
// the event row copies its kind, status and requester, a webhook delivery
// its callback URL.
const srcColumns = "id, tenant_id, task_type, entity_type, status, requested_by, callback_url"

// notifyingTopics are the topics of commonops.Notifies as an SQL list: the
// changes that write webhook deliveries.
var notifyingTopics = func() string {
	var list []string
	for _, t := range []string{commonops.TopicCompleted, commonops.TopicFailed, commonops.TopicCancelled} {
		if !commonops.Notifies(t) {
			panic("notifyingTopics: " + t + " does not notify")
		}
		list = append(list, "'"+t+"'")
	}
	return strings.Join(list, ", ")
}()

// nChangeArgs is the number of parameters of changeCTEs.
const nChangeArgs = 7

// createSQL inserts the idempotency key ($N+8...), then the task only if
// the key was free, then its event and outbox rows: one round trip. A
// create without a key uses createPlainSQL.
var createSQL = func() string {
	n := nTaskCols
	k := n + 1 + nChangeArgs
	return fmt.Sprintf(`WITH k AS (
	INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id, status_code, response, created_at)
	SELECT $%[1]d::text, $%[2]d::text, $%[3]d::text, $1::text, $%[4]d::integer, $%[5]d::json, $%[6]d::timestamptz
	ON CONFLICT DO NOTHING
	RETURNING 1
),
t AS (
	INSERT INTO tasks (%[7]s)
	SELECT %[8]s
	WHERE EXISTS (SELECT 1 FROM k)
	RETURNING `+srcColumns+`
)`, k, k+1, k+2, k+3, k+4, k+5, taskColumns, placeholders(taskColumnList, 1)) +
		eventCTEs("t", n+1) +
		`SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM o)`
}()

// createPlainSQL is createSQL without an idempotency key: it does not
// touch idempotency_keys.
var createPlainSQL = fmt.Sprintf(`WITH t AS (
	INSERT INTO tasks (%s)
	VALUES (%s)
	RETURNING `+srcColumns+`
)`, taskColumns, placeholders(taskColumnList, 1)) +
	eventCTEs("t", nTaskCols+1) +
	`SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM o)`

// saveSQL writes every column of a task loaded FOR NO KEY UPDATE, guarded
// by its old version ($N+1), with its change's rows. saveQuietSQL is the
// same for a change that notifies no webhook (all but the terminal ones:
// progress, claims, retries): it leaves the webhook tables out, which
// PostgreSQL would otherwise open and lock on every write (saveFor).
var saveSQL, saveQuietSQL = saveStatement(changeCTEs), saveStatement(eventCTEs)

// saveFor is the statement that saves a task with ch.
func saveFor(ch commonops.Change) string {
	if commonops.Notifies(ch.Topic) {
		return saveSQL
	}
	return saveQuietSQL
}

func saveStatement(changes func(src string, p int) string) string {
	n := nTaskCols
	sets := make([]string, 0, n-1)
	for i, c := range taskColumnList[1:] {
		sets = append(sets, fmt.Sprintf("%s = $%d::%s", c.name, i+2, c.typ))
	}
	return fmt.Sprintf(`WITH u AS (
	UPDATE tasks SET %s
	WHERE id = $1::text AND version = $%d::bigint
	RETURNING `+srcColumns+`
)`, strings.Join(sets, ", "), n+1) +
		changes("u", n+2) +
		`SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM o)`
}

// changeArgs are the parameters of changeCTEs for t's change ch made with
// ctx (which may carry a traceparent for the outbox row).
func (s *Store) changeArgs(ctx context.Context, t *commonops.Task, ch commonops.Change) ([]any, error) {
	var data, payload any
	if ch.Event != "" {
		b, err := commonops.AppendEventData(make([]byte, 0, 128), ch.Data, commonops.Actor(ctx))
		if err != nil {
			return nil, fmt.Errorf("encode event data of task %s: %w", t.ID, err)
		}
		data = string(b)
	}
	queued := s.topics.Has(ch.Topic)
	b, err := store.ChangePayload(t, ch.Topic, queued, s.headerPayload)
	if err != nil {
		return nil, fmt.Errorf("encode event payload of task %s: %w", t.ID, err)
	}
	if b != nil {
		payload = json.RawMessage(b) // json in every exec mode; a []byte goes as bytea over the simple protocol
	}
	var tp any
	if v := commonops.TraceParent(ctx); v != "" {
		tp = v
	}
	return []any{ch.Event, data, t.UpdatedAt, ch.Topic, payload, tp, queued}, nil
}

// createKey orders a create in its write group (see combine.go): the
// only lock a new task's insert can wait for is its idempotency key's.
func createKey(t *commonops.Task, idem *store.Idempotency) string {
	if idem == nil {
		return t.ID
	}
	tenant := cmp.Or(idem.TenantID, t.TenantID)
	return "\x00" + tenant + "\x00" + idem.Key
}

// CreateTask inserts t with ch's event and outbox rows, and the idempotency
// key when given, in one statement. A key already taken inserts nothing and
// returns the stored record. t's times are normalised to what the database
// keeps (UTC, microseconds).
func (s *Store) CreateTask(ctx context.Context, t *commonops.Task, ch commonops.Change, idem *store.Idempotency) (*store.Idempotency, error) {
	if commonops.Notifies(ch.Topic) {
		return nil, fmt.Errorf("create task %s: a create cannot notify (topic %s): its statement writes no webhook delivery", t.ID, ch.Topic)
	}
	normalize(t)
	args := taskArgs(t)
	cargs, err := s.changeArgs(ctx, t, ch)
	if err != nil {
		return nil, err
	}
	args = append(args, cargs...)
	idemTenant := len(args) // index of the key's tenant parameter
	if idem != nil {
		tenant := cmp.Or(idem.TenantID, t.TenantID)
		created := idem.CreatedAt
		if created.IsZero() {
			created = t.CreatedAt
		}
		args = append(args, tenant, idem.Key, idem.RequestHash, idem.StatusCode, jsonArg(idem.Response, "null"), dbTime(created))
	}
	sql := createSQL
	if idem == nil {
		sql = createPlainSQL
	}
	var prior *store.Idempotency
	err = retry(ctx, func() error {
		var inserted, written int
		if err := s.queryRow(ctx, createKey(t, idem), sql, args, func(r pgx.Row) error { return r.Scan(&inserted, &written) }); err != nil {
			if isCode(err, codeUniqueViolation) {
				return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("task %s already exists", t.ID), Err: err}
			}
			return err
		}
		if inserted == 1 {
			s.committed(ch, written)
			return nil
		}
		if idem == nil {
			return fmt.Errorf("task %s was not inserted", t.ID)
		}
		// The key was taken: replay what it stored.
		p, err := s.getIdempotency(ctx, args[idemTenant].(string), idem.Key)
		if errors.Is(err, pgx.ErrNoRows) {
			return errRetry // its holder vanished meanwhile: try again
		}
		prior = p
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w", t.ID, err)
	}
	return prior, nil
}

func (s *Store) getIdempotency(ctx context.Context, tenant, key string) (*store.Idempotency, error) {
	var i store.Idempotency
	var resp []byte
	err := s.pool.QueryRow(ctx, `SELECT tenant_id, key, request_hash, task_id, status_code, response, created_at
		FROM idempotency_keys WHERE tenant_id = $1 AND key = $2`, tenant, key).
		Scan(&i.TenantID, &i.Key, &i.RequestHash, &i.TaskID, &i.StatusCode, &resp, &i.CreatedAt)
	if err != nil {
		return nil, err
	}
	i.Response = rawJSON(resp)
	i.CreatedAt = i.CreatedAt.UTC()
	return &i, nil
}

// byID finds the task by its id alone and checks its tenant after: the
// MATERIALIZED CTE keeps the tenant condition out of the scan, so the only
// condition the planner can serve from an index is the id, whose unique
// btrees it costs at one row without statistics. With the tenant beside
// the id, a generic plan made while tasks is young and never analysed may
// walk a (tenant_id, ...) index and filter on id, reading every task of the
// tenant on each call. See "Plans" in docs/design.md.
const byID = "WITH t AS MATERIALIZED (SELECT %s FROM tasks WHERE id = $1%s) "

var getTaskSQL = fmt.Sprintf(byID, taskColumns, "") + "SELECT " + taskColumns + " FROM t WHERE tenant_id = $2"

// GetTask returns one task of tenant, or ENOTFOUND.
func (s *Store) GetTask(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	var t *commonops.Task
	err := s.read(ctx, func(b *pgx.Batch) { b.Queue(getTaskSQL, id, tenant) }, func(br pgx.BatchResults) error {
		var err error
		t, err = scanTask(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		return err
	})
	if err != nil {
		if commonops.ErrorCode(err) == commonops.ENOTFOUND {
			return nil, err
		}
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	return t, nil
}

func notFound(id string) error {
	return commonops.Errorf(commonops.ENOTFOUND, "task %s not found", id)
}

// where builds a conjunction of conditions with numbered parameters.
type where struct {
	conds []string
	args  []any
}

// add appends cond, where each "?" is replaced by the next parameter.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return "TRUE"
	}
	return strings.Join(w.conds, " AND ")
}

// statusCond filters on statuses; a single status is a plain equality so
// the planner can use the partial indexes.
func statusCond(w *where, statuses []commonops.Status) {
	switch len(statuses) {
	case 0:
	case 1:
		w.add("status = ?", string(statuses[0]))
	default:
		ss := make([]string, len(statuses))
		for i, st := range statuses {
			ss[i] = string(st)
		}
		w.add("status = ANY(?)", ss)
	}
}

// likeEscape escapes LIKE wildcards in s (the escape character is \).
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// pageBounds applies the paging defaults and limits.
func pageBounds(page, size int) (int, int) {
	if page < 1 {
		page = 1
	}
	if size <= 0 {
		size = commonops.PageSizeDefault
	}
	return page, min(size, commonops.PageSizeMax)
}

// customPlans makes the list's statements planned for their parameters at
// every execution. The statements are prepared (pgx caches them), and after
// five executions PostgreSQL may settle on a generic plan, which cannot use
// the search indexes (an id prefix needs its pattern to use the index) and
// guesses a search matches often: it walked the created_at index through
// 1,000,000 tasks for 1.6-2.2 s where the plan for the values takes 1-20 ms.
const customPlans = "SET LOCAL plan_cache_mode = force_custom_plan"

// ListTasks returns one page of tenant's tasks matching f, and the total
// (count of the same filter, up to f.CountUpTo when set), read in one round
// trip under the read timeout.
func (s *Store) ListTasks(ctx context.Context, f commonops.ListFilter) ([]*commonops.Task, int, error) {
	sortBy := f.SortOrDefault()
	col, ok := store.SortColumns[sortBy.Field]
	if !ok {
		return nil, 0, commonops.Invalid(commonops.FieldError{Field: "sort", Message: "must be one of " + strings.Join(commonops.SortFields, ", ")})
	}
	var w where
	w.add("tenant_id = ?", f.TenantID)
	if f.TaskType != "" {
		w.add("task_type = ?", f.TaskType)
	}
	if f.EntityType != "" {
		w.add("entity_type = ?", f.EntityType)
	}
	if f.RequestedBy != "" {
		w.add("requested_by = ?", f.RequestedBy)
	}
	statusCond(&w, f.Statuses)
	if f.StartDate != nil {
		w.add("created_at >= ?", *f.StartDate)
	}
	if f.EndDate != nil {
		w.add("created_at < ?", *f.EndDate)
	}
	if f.Search != "" {
		// Served by tasks_pkey (the id is COLLATE "C", 0019) and
		// tasks_search_trgm_idx (0006).
		like := "%" + likeEscape(f.Search) + "%"
		w.add("(id LIKE ? OR file_name ILIKE ? OR message ILIKE ? OR error_message ILIKE ?)",
			likeEscape(strings.ToLower(f.Search))+"%", like, like, like)
	}
	count := "SELECT count(*) FROM tasks WHERE " + w.String()
	if f.CountUpTo > 0 {
		count = fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM tasks WHERE %s LIMIT %d) AS m", w.String(), f.CountUpTo)
	}
	countArgs := slices.Clone(w.args)
	// As on SQLite: nulls (scheduledAt, completedAt) last in either
	// direction, ties broken by id.
	nullable := col == "scheduled_at" || col == "completed_at"
	dir, cmp := "ASC", ">"
	if sortBy.Desc {
		dir, cmp = "DESC", "<"
	}
	order := fmt.Sprintf("%s %s NULLS LAST, id %s", col, dir, dir)
	if !nullable {
		order = fmt.Sprintf("%s %s, id %s", col, dir, dir) // NOT NULL: no NULLS clause, so the index order matches
	}
	page, size := pageBounds(f.Page, f.PageSize)
	offset := (page - 1) * size
	if c := f.After; c != nil {
		if c.Sort != sortBy {
			return nil, 0, commonops.Invalid(commonops.FieldError{Field: "cursor", Message: "was returned for another sort"})
		}
		key := c.Key
		if st, ok := key.(commonops.Status); ok {
			key = string(st)
		}
		switch {
		case key == nil && nullable:
			w.add(fmt.Sprintf("(%s IS NULL AND id %s ?)", col, cmp), c.ID)
		case key == nil:
			return nil, 0, commonops.Invalid(commonops.FieldError{Field: "cursor", Message: "has no key for " + sortBy.Field})
		case nullable:
			w.add(fmt.Sprintf("(%s IS NULL OR (%s, id) %s (?, ?))", col, col, cmp), key, c.ID)
		default:
			w.add(fmt.Sprintf("(%s, id) %s (?, ?)", col, cmp), key, c.ID)
		}
		offset = 0
	}
	list := fmt.Sprintf("SELECT %s FROM tasks WHERE %s ORDER BY %s LIMIT %d OFFSET %d", taskColumns, w.String(), order, size, offset)

	var total int
	var tasks []*commonops.Task
	err := s.read(ctx, func(b *pgx.Batch) {
		b.Queue(customPlans)
		b.Queue(count, countArgs...)
		b.Queue(list, w.args...)
	}, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&total); err != nil {
			return fmt.Errorf("count tasks: %w", err)
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		tasks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*commonops.Task, error) { return scanTask(r) })
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	if tasks == nil {
		tasks = []*commonops.Task{}
	}
	return tasks, total, nil
}

// fnError carries the error of an UpdateTask callback through the retry
// loop untouched.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// txConn is a pooled connection inside an explicit transaction that the
// driver drives with pipelined batches, so BEGIN travels with the first
// query and COMMIT with the last writes.
type txConn struct {
	c *pgxpool.Conn
}

func (s *Store) acquire(ctx context.Context) (*txConn, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &txConn{c: c}, nil
}

// release rolls back whatever is still open and returns the connection.
func (tc *txConn) release() {
	if !tc.c.Conn().IsClosed() && tc.c.Conn().PgConn().TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = tc.c.Exec(ctx, "ROLLBACK")
		cancel()
	}
	tc.c.Release() // the pool drops a connection left in a transaction
}

// saveArgs are the parameters of saveSQL writing t, loaded at version old,
// with its change.
func (s *Store) saveArgs(ctx context.Context, t *commonops.Task, old int64, ch commonops.Change) ([]any, error) {
	normalize(t)
	cargs, err := s.changeArgs(ctx, t, ch)
	if err != nil {
		return nil, err
	}
	return append(append(taskArgs(t), old), cargs...), nil
}

// lockTaskSQL locks the task by id (byID) and checks its tenant ($2, empty
// for any) after; a guessed id of another tenant is locked until UpdateTask
// rolls back, and never read. The lock is FOR NO KEY UPDATE, as the write
// changes no key: a log append, which holds the task FOR KEY SHARE so that
// it is not deleted meanwhile, does not wait for it.
var lockTaskSQL = fmt.Sprintf(byID, taskColumns, " FOR NO KEY UPDATE") + "SELECT " + taskColumns + " FROM t WHERE $2 = '' OR tenant_id = $2"

// UpdateTask locks the task, calls fn and saves the result with ch's rows,
// in two round trips: BEGIN with SELECT ... FOR NO KEY UPDATE, then the
// write with COMMIT. The version check stays as the optimistic guard: a
// write that matches no row reloads and calls fn again. A callback that
// changes nothing writes nothing.
func (s *Store) UpdateTask(ctx context.Context, tenant, id string, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error) {
	var saved *commonops.Task
	err := retry(ctx, func() error {
		tc, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		defer tc.release()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(lockTaskSQL, id, tenant)
		br := tc.c.SendBatch(ctx, b)
		_, err = br.Exec()
		var t *commonops.Task
		if err == nil {
			t, err = scanTask(br.QueryRow())
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		cur := t
		t = cur.Clone()
		ch, err := fn(t)
		if err != nil {
			return fnError{err}
		}
		t.ID, t.TenantID = cur.ID, cur.TenantID
		normalize(t)
		old := cur.Version
		if ch.None() && t.Version == old && reflect.DeepEqual(cur, t) {
			saved = cur
			_, err := tc.c.Exec(ctx, "COMMIT")
			return err
		}
		if t.Version == old {
			t.Version++
		}
		args, err := s.saveArgs(ctx, t, old, ch)
		if err != nil {
			return fnError{err}
		}
		b = &pgx.Batch{}
		b.Queue(saveFor(ch), args...)
		b.Queue("COMMIT")
		br = tc.c.SendBatch(ctx, b)
		var updated, written int
		err = br.QueryRow().Scan(&updated, &written)
		if err == nil {
			_, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if updated != 1 {
			return errRetry
		}
		s.committed(ch, written)
		saved = t
		return nil
	})
	var fe fnError
	if errors.As(err, &fe) {
		return nil, fe.err
	}
	if err != nil {
		return nil, fmt.Errorf("update task %s: %w", id, err)
	}
	return saved, nil
}

// UpdateTaskFrom calls fn on a copy of known and, while known is still the
// stored version, writes the result in one statement guarded by that
// version, without a transaction or a read first: the path of a worker
// reporting on the task it holds. A task changed since, or a callback that
// fails or changes nothing on known, goes through UpdateTask, which calls fn
// on the stored task.
func (s *Store) UpdateTaskFrom(ctx context.Context, known *commonops.Task, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error) {
	t := known.Clone()
	ch, err := fn(t)
	if err != nil || ch.None() && t.Version == known.Version && reflect.DeepEqual(known, t) {
		return s.UpdateTask(ctx, known.TenantID, known.ID, fn)
	}
	t.ID, t.TenantID = known.ID, known.TenantID
	if t.Version == known.Version {
		t.Version++
	}
	args, err := s.saveArgs(ctx, t, known.Version, ch)
	if err != nil {
		return nil, err
	}
	var updated, written int
	err = retry(ctx, func() error {
		return s.queryRow(ctx, known.ID, saveFor(ch), args, func(r pgx.Row) error { return r.Scan(&updated, &written) })
	})
	if err != nil {
		return nil, fmt.Errorf("update task %s: %w", known.ID, err)
	}
	if updated != 1 {
		return s.UpdateTask(ctx, known.TenantID, known.ID, fn)
	}
	s.committed(ch, written)
	return t, nil
}

// deleteTaskSQL deletes a terminal task and its idempotency keys; its logs
// go by cascade, its history with deleteEventsSQL, and outbox rows stay so
// its last events still go out.
var deleteTaskSQL = `WITH d AS (
	DELETE FROM tasks WHERE id = $1 AND tenant_id = $2 AND status IN ('completed', 'failed', 'cancelled')
	RETURNING ` + taskColumns + `
),
k AS (DELETE FROM idempotency_keys WHERE task_id IN (SELECT id FROM d))
SELECT ` + taskColumns + ` FROM d`

// deleteEventsSQL deletes the history of task $1 once the task is gone. It
// runs after deleteTaskSQL in the same transaction, as a statement of its
// own: the delete waited for the row lock of any writer of the task, so
// this statement's snapshot holds every history row written, and no new one
// can come (history rows are written with their task row).
const deleteEventsSQL = `DELETE FROM task_events WHERE task_id = $1 AND tenant_id = $2
	AND NOT EXISTS (SELECT 1 FROM tasks WHERE id = $1)`

// deleteDeliveriesSQL deletes the finished webhook deliveries of a deleted
// task (their attempts go with them); pending ones are still sent.
const deleteDeliveriesSQL = `DELETE FROM webhook_deliveries WHERE task_id = $1 AND tenant_id = $2 AND status <> 'pending'
	AND NOT EXISTS (SELECT 1 FROM tasks WHERE id = $1)`

// DeleteTask deletes a terminal task with its logs and history and returns
// it, in one round trip. ECONFLICT with the task when it is not terminal.
func (s *Store) DeleteTask(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	var t *commonops.Task
	err := retry(ctx, func() error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(deleteTaskSQL, id, tenant)
		b.Queue(deleteEventsSQL, id, tenant)
		b.Queue(lockDeliveriesSQL, id, tenant)
		b.Queue(deleteDeliveriesSQL, id, tenant)
		b.Queue("COMMIT")
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		var err error
		t, err = scanTask(br.QueryRow())
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return br.Close() // the history delete and COMMIT
	})
	if err != nil {
		return nil, interpretError(fmt.Errorf("delete task %s: %w", id, err))
	}
	if t != nil {
		return t, nil
	}
	cur, err := s.GetTask(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return nil, &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("task %s is %s: only completed, failed or cancelled tasks can be deleted", id, cur.Status), Task: cur}
}

// claimSet is (*commonops.Task).Claim as SQL, for claimTaskSQL and
// claimNextSQL: $1 worker, $2 lease expiry, $3 now. ClaimTask's and
// ClaimNext's conformance tests hold it to the Go method.
const claimSet = `status = 'processing', attempt = attempt + 1,
		lease_owner = $1, lease_expires_at = $2, started_at = $3, available_at = NULL, eta_seconds = NULL,
		progress = CASE WHEN checkpoint IS NULL THEN 0 ELSE progress END,
		processed_items = CASE WHEN checkpoint IS NULL THEN 0 ELSE processed_items END,
		success_items = CASE WHEN checkpoint IS NULL THEN 0 ELSE success_items END,
		failed_items = CASE WHEN checkpoint IS NULL THEN 0 ELSE failed_items END,
		updated_at = $3, version = version + 1`

// readyWhere holds the pending tasks whose input is ready. freshWhere (no
// backoff) is the predicate of tasks_fair_claim_idx and retryWhere (a
// backoff, over or not) that of tasks_retry_claim_idx (migration 0018);
// every reader of those indexes states them as written here, so that
// PostgreSQL can match them.
const (
	readyWhere = `status = 'pending' AND upload_status NOT IN ('awaiting', 'expired')`
	freshWhere = readyWhere + ` AND available_at IS NULL`
	retryWhere = readyWhere + ` AND available_at IS NOT NULL`
)

// runnableWhere is (*commonops.Task).Runnable at $3.
const runnableWhere = readyWhere + ` AND NOT cancel_requested
	  AND (available_at IS NULL OR available_at <= $3)`

// claimEvents records the started events of the rows a claim statement's
// CTE u returns; the parameter actor holds the actor (empty for none, see
// commonops.Actor).
func claimEvents(actor string) string {
	return `,
e AS (
	INSERT INTO task_events (tenant_id, task_id, task_type, entity_type, status, requested_by, event_type, event_data, created_at)
	SELECT tenant_id, id, task_type, entity_type, status, requested_by, '` + commonops.EventStarted + `',
		json_strip_nulls(json_build_object('from', 'pending', 'to', 'processing', 'attempt', attempt, 'workerId', $1::text,
			'actor', NULLIF(` + actor + `::text, ''))), $3
	FROM u
)`
}

// claimTaskSQL claims task $4 of tenant $5 (empty for any) if it is
// runnable, of one of the kinds $6 (task types) and $7 (entity types)
// name, pairwise (NULL: any kind), and not held back by a flow control, and
// returns it with true; otherwise it returns the task as the statement
// found it, with false, so a task that is not runnable costs no second
// round trip. Nothing is locked first: a claimer that meets a concurrent
// change of the row waits for its lock and then matches nothing (the row
// has a new ctid); ClaimTask tries again.
//
// The row is found by key alone (CTE r, as byID), checked in k and updated
// by its ctid: with the runnable conditions beside "id = $4" the planner,
// whose statistics of a busy queue are always behind, walks the claim index
// instead of the primary key, and with the tenant beside it a tenant index.
//
// fl reads the flow controls of the task's type: a paused type is not
// claimed; a limited one is claimed only with $9 true, when the caller took
// the type's lock (lockTaskTypesSQL) earlier in its transaction, and only
// below its limits. The last three columns tell why a task was not
// claimed: paused, limited, and at its limit (with $9 true).
var claimTaskSQL = `WITH r AS MATERIALIZED (
	SELECT ctid, tenant_id, task_type, entity_type FROM tasks WHERE id = $4
),
fl AS MATERIALIZED (
	SELECT COALESCE(bool_or(f.paused), false) AS paused,
		COALESCE(bool_or(f.max_running IS NOT NULL), false) AS limited,
		$9::boolean AND COALESCE(bool_or(f.max_running <= (SELECT count(*) FROM tasks x
			WHERE x.status = 'processing' AND x.task_type = r.task_type AND (f.tenant_id = '' OR x.tenant_id = f.tenant_id))), false) AS at_limit
	FROM r JOIN flow_controls f ON f.task_type = r.task_type AND f.tenant_id IN ('', r.tenant_id)
),
k AS (
	SELECT ctid FROM r WHERE ($5 = '' OR tenant_id = $5)
	  AND ($6::text[] IS NULL OR EXISTS (
		SELECT 1 FROM unnest($6::text[], $7::text[]) AS kind(task_type, entity_type)
		WHERE kind.task_type IN ('*', r.task_type) AND kind.entity_type IN ('*', r.entity_type)))
	  AND NOT (SELECT paused OR (limited AND NOT $9::boolean) OR at_limit FROM fl)
),
u AS (
	UPDATE tasks SET ` + claimSet + `
	FROM k WHERE tasks.ctid = k.ctid AND ` + runnableWhere + `
	RETURNING ` + qualified("tasks", taskColumnList) + `
)` + claimEvents("$8") + `,
f AS MATERIALIZED (
	SELECT ` + taskColumns + ` FROM tasks WHERE id = $4 AND NOT EXISTS (SELECT 1 FROM u)
)
SELECT ` + taskColumns + `, true, false, false, false FROM u
UNION ALL
SELECT ` + taskColumns + `, false, fl.paused, fl.limited, fl.at_limit FROM f, fl WHERE $5 = '' OR tenant_id = $5`

// limitedMemory is how long ClaimTask takes a task type found limited for
// still limited, and claims its tasks under the type's lock at once.
const limitedMemory = 10 * time.Second

// ClaimTask claims one task in a single statement when it is runnable and
// its type has no limit; a limited type's claim takes the type's lock
// first, in the same transaction (the write group's, see combine.go, or
// its own when sent alone). A claim naming one task type (as an
// event's does) that a claim found limited in the last limitedMemory takes
// the lock at once; otherwise the first statement tells that the type is
// limited, and the locked claim is a second round trip. The lock is of the
// stored task's type, so a wrong guess costs a lock, never a limit. When
// the task is not claimed, the same statement returns it, and Claim applied
// to it gives the reason, or the flow control that holds it back; if
// neither does (it changed in between), the claim is tried again.
func (s *Store) ClaimTask(ctx context.Context, tenant, id string, p store.ClaimParams) (*commonops.Task, error) {
	now, exp := claimTimes(p)
	var taskTypes, entityTypes []string // nil: any kind
	for _, k := range p.Kinds {
		taskTypes, entityTypes = append(taskTypes, k.TaskType), append(entityTypes, k.EntityType)
	}
	var t *commonops.Task
	locked := false
	if len(taskTypes) == 1 {
		if seen, ok := s.limited.Load(taskTypes[0]); ok && time.Since(seen.(time.Time)) < limitedMemory {
			locked = true
		}
	}
	err := retry(ctx, func() error {
		var claimed, paused, limited, full bool
		args := []any{p.WorkerID, exp, now, id, tenant, taskTypes, entityTypes, commonops.Actor(ctx), locked}
		scan := func(r pgx.Row) error {
			var err error
			t, err = scanTask(r, &claimed, &paused, &limited, &full)
			return err
		}
		lockTask := ""
		if locked {
			lockTask = id
		}
		err := s.queryRowLocked(ctx, id, lockTask, claimTaskSQL, args, scan)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return notFound(id)
		case err == nil && claimed:
			s.commits.Signal() // the started event, which has no outbox row
			return nil
		case err != nil:
			return err
		}
		if err := t.CheckKind(p.Kinds); err != nil {
			return err
		}
		if _, err := t.Clone().Claim(p.WorkerID, p.Lease, now); err != nil {
			return err
		}
		switch {
		case paused:
			return commonops.Held(t, true)
		case full:
			return commonops.Held(t, false)
		case limited && !locked:
			s.limited.Store(t.TaskType, time.Now())
			locked = true
		}
		return errRetry
	})
	if err != nil {
		if commonops.ErrorCode(err) != "" {
			return nil, err
		}
		return nil, fmt.Errorf("claim task %s: %w", id, err)
	}
	return t, nil
}

// claimTimes are a claim's time (p.Now, or the clock when unset) and its
// lease expiry, as the database stores them.
func claimTimes(p store.ClaimParams) (now, exp time.Time) {
	now = p.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = dbTime(now)
	return now, dbTime(now.Add(p.Lease))
}

// kindsWhere is the claim's kinds filter ($5 task types, $6 entity types,
// pairwise; NULL for any) on the row of tasks.
const kindsWhere = `($5::text[] IS NULL OR EXISTS (
		SELECT 1 FROM unnest($5::text[], $6::text[]) AS k(task_type, entity_type)
		WHERE (k.task_type = '*' OR k.task_type = tasks.task_type)
		  AND (k.entity_type = '*' OR k.entity_type = tasks.entity_type)))`

// claimNextSQL claims up to $4 runnable tasks of the kinds ($5, $6) by the
// tenants' shares ($8 tenants, $9 their weights, $10 their recent use),
// within the flow controls.
//
//   - q walks the (tenant, task type) pairs with ready pending tasks by a loose
//     index scan of tasks_fair_claim_idx (qf, the tasks not backing off)
//     and one of tasks_retry_claim_idx (qr, those with an available_at,
//     due or not): one index probe per pair and index, however many tasks
//     each holds.
//   - room drops the paused pairs and those of other kinds, and tells how
//     many more tasks each pair may start: pair_room under the tenant's
//     limit for the type, type_room under the type's limit for all tenants
//     (NULL: no limit), from the running tasks counted in run.
//   - cand takes each pair's first runnable tasks in claim order (priority,
//     then age), no more than $4 nor its room: of the first so many from
//     tasks_fair_claim_idx in claim order (ordered by the pair first, so no
//     other index serves that order) and the first so many whose backoff is
//     over from tasks_retry_claim_idx, by the end of their backoff. So a
//     claim never reads a task still backing off; it sees only each pair's
//     so many longest-due retries, and a higher-priority retry due later
//     waits until it is among them.
//   - shared ranks each candidate by its tenant's share: (the tenant's
//     running tasks + the candidate's rank among the tenant's + the
//     tenant's recent use) / weight.
//   - c locks the candidates in share order, skipping rows other claimers
//     hold, keeping within each type's room across tenants. It finds them
//     by primary key (id = ANY of the picked ids): the planner guesses a
//     thousand candidates per pair, and joined on id it read every pending
//     task by a sequential scan (28 ms of a 45 ms claim behind 20,000
//     pending tasks). It takes a candidate only as cand read it (the same
//     row version: its xmin, and its version, which every write bumps, in
//     case a 32-bit xmin came round again): its runnable conditions hold,
//     and a row changed meanwhile is skipped rather than rechecked. With
//     the runnable conditions here, the planner could
//     find the picked rows through an index of the pending tasks: planned
//     on an empty table, never analysed, the claim walked every pending
//     task in tasks_fair_claim_idx (guessed to hold one row) on each call.
//
// The limits hold across claimers because every claim of a limited type
// runs after lockLimitedSQL in the same transaction.
var claimNextSQL = `WITH RECURSIVE ` + loosePairs("qf", freshWhere) + `,
` + loosePairs("qr", retryWhere) + `,
q AS MATERIALIZED (
	SELECT tenant_id, task_type FROM qf UNION SELECT tenant_id, task_type FROM qr
),
run AS MATERIALIZED (
	SELECT tenant_id, task_type, count(*) AS n FROM tasks WHERE status = 'processing' GROUP BY tenant_id, task_type
),
fc AS MATERIALIZED (
	SELECT f.tenant_id, f.task_type, f.paused,
		f.max_running - COALESCE((SELECT sum(r.n) FROM run r
			WHERE r.task_type = f.task_type AND (f.tenant_id = '' OR r.tenant_id = f.tenant_id)), 0) AS room
	FROM flow_controls f
),
room AS MATERIALIZED (
	SELECT q.tenant_id, q.task_type,
		(SELECT GREATEST(fc.room, 0) FROM fc WHERE fc.task_type = q.task_type AND fc.tenant_id = q.tenant_id) AS pair_room,
		(SELECT GREATEST(fc.room, 0) FROM fc WHERE fc.task_type = q.task_type AND fc.tenant_id = '') AS type_room
	FROM q
	WHERE NOT EXISTS (SELECT 1 FROM fc WHERE fc.task_type = q.task_type AND fc.tenant_id IN ('', q.tenant_id) AND fc.paused)
	  AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($5::text[]) AS k(task_type) WHERE k.task_type IN ('*', q.task_type)))
),
cand AS (
	SELECT t.id, t.xmin, t.version, t.tenant_id, t.task_type, t.priority, t.created_at, room.type_room
	FROM room CROSS JOIN LATERAL (
		SELECT * FROM (
			` + pairCandidates(freshWhere, "priority DESC, created_at, id") + `
			UNION ALL
			` + pairCandidates(retryWhere+` AND available_at <= $3`, "available_at, priority DESC, created_at, id") + `
		) AS b
		ORDER BY priority DESC, created_at, id
		LIMIT LEAST($4, room.pair_room, room.type_room)
	) AS t
),
shared AS (
	SELECT cand.*, (COALESCE((SELECT sum(r.n) FROM run r WHERE r.tenant_id = cand.tenant_id), 0)
			+ row_number() OVER (PARTITION BY cand.tenant_id ORDER BY cand.priority DESC, cand.created_at, cand.id)
			+ COALESCE(w.usage, 0))::float8
		/ GREATEST(COALESCE(w.weight, 1), 1) AS share
	FROM cand LEFT JOIN unnest($8::text[], $9::int[], $10::float8[]) AS w(tenant_id, weight, usage) ON w.tenant_id = cand.tenant_id
),
picked AS (
	SELECT id AS pick_id, xmin AS pick_xmin, version AS pick_version, share, type_room,
		row_number() OVER (PARTITION BY task_type ORDER BY share, priority DESC, created_at, id) AS type_rank
	FROM shared
),
c AS (
	SELECT tasks.id, picked.share FROM tasks JOIN picked ON tasks.id = picked.pick_id
	WHERE tasks.id = ANY (ARRAY(SELECT pick_id FROM picked))
	  AND (picked.type_room IS NULL OR picked.type_rank <= picked.type_room)
	  AND tasks.xmin = picked.pick_xmin AND tasks.version = picked.pick_version
	ORDER BY picked.share, tasks.priority DESC, tasks.created_at, tasks.id
	LIMIT $4
	FOR NO KEY UPDATE OF tasks SKIP LOCKED
),
u AS (
	UPDATE tasks SET ` + claimSet + `
	FROM c WHERE tasks.id = c.id
	RETURNING ` + qualified("tasks", taskColumnList) + `, c.share
)` + claimEvents("$7") + `
SELECT ` + taskColumns + ` FROM u ORDER BY share, priority DESC, created_at, id`

// loosePairs is the recursive CTE name that walks the (tenant, task type)
// pairs of the pending tasks where holds, in order, by a loose index scan:
// one probe of the partial index whose predicate is where per pair.
func loosePairs(name, where string) string {
	return name + ` AS (
	(SELECT tenant_id, task_type FROM tasks WHERE ` + where + ` ORDER BY tenant_id, task_type LIMIT 1)
	UNION ALL
	SELECT n.tenant_id, n.task_type FROM ` + name + ` CROSS JOIN LATERAL (
		SELECT tenant_id, task_type FROM tasks
		WHERE ` + where + ` AND (tenant_id, task_type) > (` + name + `.tenant_id, ` + name + `.task_type)
		ORDER BY tenant_id, task_type LIMIT 1
	) AS n
)`
}

// pairCandidates reads room's pair's first runnable tasks of the kinds
// among those where holds (an index's predicate, and the time), in order
// after the pair, no more than $4 nor the pair's room.
func pairCandidates(where, order string) string {
	return `(SELECT id, xmin, version, tenant_id, task_type, priority, created_at FROM tasks
			WHERE tasks.tenant_id = room.tenant_id AND tasks.task_type = room.task_type
			  AND ` + where + ` AND NOT cancel_requested
			  AND ` + kindsWhere + `
			ORDER BY tenant_id, task_type, ` + order + `
			LIMIT LEAST($4, room.pair_room, room.type_room))`
}

// shareArgs are p.Weights and p.Usage as the three arrays of
// claimNextSQL's $8, $9 and $10: every tenant either names, with its
// weight (1 when not set) and its use (0 when not set).
func shareArgs(p store.ClaimParams) (tenants []string, weights []int32, usage []float64) {
	tenants, weights, usage = []string{}, []int32{}, []float64{}
	add := func(t string) {
		tenants, weights, usage = append(tenants, t), append(weights, int32(max(p.Weights[t], 1))), append(usage, p.Usage[t])
	}
	for t := range p.Weights {
		add(t)
	}
	for t := range p.Usage {
		if _, ok := p.Weights[t]; !ok {
			add(t)
		}
	}
	return tenants, weights, usage
}

// claimPlans makes the claim's statement run on its generic plan, planned
// once per connection, and planned with sequential scans disabled. Its plan does
// not depend on the parameters (every read of tasks is by an index, bounded
// by the limit or the pairs), while planning it for each call's parameters,
// as PostgreSQL does for the first five executions and after whenever it
// guesses a custom plan is cheaper, took 5-10 ms: more than the claim
// itself (under 1 ms for a task). The plan is made once, often while the
// table is still empty and never analysed, and the planner then guesses it
// holds a few rows: finding the picked tasks by a sequential scan looked
// cheaper than by their ids, and read every task on each claim of the
// connection, long after the table had grown. Disabled is not forbidden:
// flow_controls, which no index can serve here, is still read by a
// sequential scan, whose disabled cost puts the plan past JIT's
// thresholds; compiling it took 1.8 s a claim, hence jit off.
const claimPlans = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)"

// ClaimNext claims up to p.Limit runnable tasks in one round trip: BEGIN,
// the plan mode, the locks of the limited task types the claim may start,
// the claim statement and COMMIT travel in one batch. The tasks come back
// in claim order (by share).
func (s *Store) ClaimNext(ctx context.Context, p store.ClaimParams) ([]*commonops.Task, error) {
	now, exp := claimTimes(p)
	var types, entities []string
	for _, k := range p.Kinds {
		types = append(types, k.TaskType)
		entities = append(entities, k.EntityType)
	}
	tenants, weights, usage := shareArgs(p)
	args := []any{p.WorkerID, exp, now, max(p.Limit, 1), types, entities, commonops.Actor(ctx), tenants, weights, usage}
	var claimed []*commonops.Task
	err := retry(ctx, func() error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(claimPlans)
		b.Queue(lockLimitedSQL, types)
		b.Queue(claimNextSQL, args...)
		b.Queue("COMMIT")
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		for range 3 { // BEGIN, the plan mode, the locks
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		claimed, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*commonops.Task, error) { return scanTask(r) })
		if err != nil {
			return err
		}
		return br.Close() // with COMMIT
	})
	if err != nil {
		return nil, fmt.Errorf("claim tasks for %s: %w", p.WorkerID, err)
	}
	if len(claimed) > 0 {
		s.commits.Signal() // their started events, which have no outbox rows
	}
	if claimed == nil {
		claimed = []*commonops.Task{}
	}
	return claimed, nil
}

// Sweep returns references to tasks matching f across tenants in id order,
// after f.AfterID (the keyset cursor, served by the primary key). Limit is
// required.
func (s *Store) Sweep(ctx context.Context, f store.SweepFilter) ([]store.TaskRef, error) {
	var w where
	statusCond(&w, f.Statuses)
	if f.UploadStatus != "" {
		w.add("upload_status = ?", string(f.UploadStatus))
	}
	if len(f.UploadStatuses) > 0 {
		us := make([]string, len(f.UploadStatuses))
		for i, u := range f.UploadStatuses {
			us[i] = string(u)
		}
		w.add("upload_status = ANY(?)", us)
	}
	if f.Limit <= 0 {
		return nil, commonops.Invalid(commonops.FieldError{Field: "limit", Message: "must be positive"})
	}
	bound := func(col string, t *time.Time) {
		if t != nil {
			w.add(col+" <= ?", *t)
		}
	}
	bound("scheduled_at", f.ScheduledBefore)
	bound("lease_expires_at", f.LeaseExpiredBefore)
	bound("upload_expires_at", f.UploadExpiredBefore)
	bound("created_at", f.CreatedBefore)
	bound("updated_at", f.UpdatedBefore)
	bound("completed_at", f.CompletedBefore)
	if f.AvailableBefore != nil {
		w.add("(available_at IS NULL OR available_at <= ?)", *f.AvailableBefore)
	}
	if f.DeadlineBefore != nil {
		w.add("timeout_seconds IS NOT NULL AND started_at + make_interval(secs => timeout_seconds) <= ?", *f.DeadlineBefore)
	}
	if f.AfterID != "" {
		w.add("id > ?", f.AfterID)
	}
	q := fmt.Sprintf("SELECT tenant_id, id FROM tasks WHERE %s ORDER BY id LIMIT %d", w.String(), f.Limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, interpretError(fmt.Errorf("sweep tasks: %w", err))
	}
	refs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.TaskRef, error) {
		var ref store.TaskRef
		err := r.Scan(&ref.TenantID, &ref.ID)
		return ref, err
	})
	if err != nil {
		return nil, interpretError(fmt.Errorf("sweep tasks: %w", err))
	}
	return refs, nil
}
