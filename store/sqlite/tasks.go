package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// taskColumns lists the tasks columns in the order scanTask reads them and
// taskArgs writes them.
const taskColumns = `id, tenant_id, task_type, entity_type, status, priority, params, requested_by,
	file_name, file_size, content_type, upload_status, upload_expires_at, output_file_name, errors_file_name,
	progress, total_items, processed_items, success_items, failed_items, message, error_message,
	attempt, retry_count, max_retries, cancel_requested, checkpoint, lease_owner, lease_expires_at,
	available_at, scheduled_at, started_at, completed_at, created_at, updated_at, version, last_progress_event_at,
	input_etag, output_object, output_etag, stored_bytes, total_items_estimated, eta_seconds,
	callback_url, timeout_seconds`

const taskColumnCount = 45

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func nullString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func nullInt(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

func nullJSON(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	return string(r)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// taskArgs returns t's column values in taskColumns order.
func taskArgs(t *commonops.Task) []any {
	params := string(t.Params)
	if len(t.Params) == 0 {
		params = "{}"
	}
	return []any{
		t.ID, t.TenantID, t.TaskType, t.EntityType, string(t.Status), t.Priority, params, t.RequestedBy,
		nullString(t.FileName), nullInt(t.FileSize), nullString(t.ContentType), string(t.UploadStatus), nullMicros(t.UploadExpiresAt), nullString(t.OutputFileName), nullString(t.ErrorsFileName),
		t.Progress, nullInt(t.TotalItems), t.ProcessedItems, t.SuccessItems, t.FailedItems, nullString(t.Message), nullString(t.ErrorMessage),
		t.Attempt, t.RetryCount, t.MaxRetries, boolInt(t.CancelRequested), nullJSON(t.Checkpoint), nullString(t.LeaseOwner), nullMicros(t.LeaseExpiresAt),
		nullMicros(t.AvailableAt), nullMicros(t.ScheduledAt), nullMicros(t.StartedAt), nullMicros(t.CompletedAt), micros(t.CreatedAt), micros(t.UpdatedAt), t.Version, nullMicros(t.LastProgressEventAt),
		nullString(t.InputETag), nullString(t.OutputObject), nullString(t.OutputETag), t.StoredBytes,
		boolInt(t.TotalItemsEstimated), nullInt(t.EtaSeconds),
		nullString(t.CallbackURL),
		nullInt32(t.TimeoutSeconds),
	}
}

func nullInt32(v *int) any {
	if v == nil {
		return nil
	}
	return int64(*v)
}

type scanner interface{ Scan(dest ...any) error }

func strPtr(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	return &v.String
}

func intPtr(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

// scanTask reads one row of taskColumns.
func scanTask(r scanner) (*commonops.Task, error) {
	var (
		t                                                                    commonops.Task
		status, uploadStatus, params                                         string
		fileName, contentType, outputFileName, errorsFileName                sql.NullString
		message, errorMessage, checkpoint, leaseOwner                        sql.NullString
		inputETag, outputObject, outputETag, callbackURL                     sql.NullString
		fileSize, totalItems, etaSeconds, timeoutSeconds                     sql.NullInt64
		uploadExpiresAt, leaseExpiresAt, availableAt, scheduledAt, startedAt sql.NullInt64
		completedAt, lastProgressEventAt                                     sql.NullInt64
		createdAt, updatedAt                                                 int64
		cancelRequested, totalItemsEstimated                                 int
	)
	err := r.Scan(&t.ID, &t.TenantID, &t.TaskType, &t.EntityType, &status, &t.Priority, &params, &t.RequestedBy,
		&fileName, &fileSize, &contentType, &uploadStatus, &uploadExpiresAt, &outputFileName, &errorsFileName,
		&t.Progress, &totalItems, &t.ProcessedItems, &t.SuccessItems, &t.FailedItems, &message, &errorMessage,
		&t.Attempt, &t.RetryCount, &t.MaxRetries, &cancelRequested, &checkpoint, &leaseOwner, &leaseExpiresAt,
		&availableAt, &scheduledAt, &startedAt, &completedAt, &createdAt, &updatedAt, &t.Version, &lastProgressEventAt,
		&inputETag, &outputObject, &outputETag, &t.StoredBytes, &totalItemsEstimated, &etaSeconds,
		&callbackURL, &timeoutSeconds)
	if err != nil {
		return nil, err
	}
	t.Status = commonops.Status(status)
	t.UploadStatus = commonops.UploadStatus(uploadStatus)
	t.Params = json.RawMessage(params)
	t.FileName, t.ContentType, t.OutputFileName, t.ErrorsFileName = strPtr(fileName), strPtr(contentType), strPtr(outputFileName), strPtr(errorsFileName)
	t.Message, t.ErrorMessage, t.LeaseOwner = strPtr(message), strPtr(errorMessage), strPtr(leaseOwner)
	if checkpoint.Valid {
		t.Checkpoint = json.RawMessage(checkpoint.String)
	}
	t.FileSize, t.TotalItems, t.EtaSeconds = intPtr(fileSize), intPtr(totalItems), intPtr(etaSeconds)
	t.TotalItemsEstimated = totalItemsEstimated != 0
	if timeoutSeconds.Valid {
		v := int(timeoutSeconds.Int64)
		t.TimeoutSeconds = &v
	}
	t.UploadExpiresAt, t.LeaseExpiresAt, t.AvailableAt = fromNullMicros(uploadExpiresAt), fromNullMicros(leaseExpiresAt), fromNullMicros(availableAt)
	t.ScheduledAt, t.StartedAt, t.CompletedAt = fromNullMicros(scheduledAt), fromNullMicros(startedAt), fromNullMicros(completedAt)
	t.LastProgressEventAt = fromNullMicros(lastProgressEventAt)
	t.InputETag, t.OutputObject, t.OutputETag = strPtr(inputETag), strPtr(outputObject), strPtr(outputETag)
	t.CallbackURL = strPtr(callbackURL)
	t.CreatedAt, t.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	t.CancelRequested = cancelRequested != 0
	return &t, nil
}

// normalize gives t's times the precision and zone they are stored with, so
// the task a write returns equals the one a later read returns.
func normalize(t *commonops.Task) {
	t.CreatedAt, t.UpdatedAt = truncTime(t.CreatedAt), truncTime(t.UpdatedAt)
	t.UploadExpiresAt = truncTimePtr(t.UploadExpiresAt)
	t.LeaseExpiresAt = truncTimePtr(t.LeaseExpiresAt)
	t.AvailableAt = truncTimePtr(t.AvailableAt)
	t.ScheduledAt = truncTimePtr(t.ScheduledAt)
	t.StartedAt = truncTimePtr(t.StartedAt)
	t.CompletedAt = truncTimePtr(t.CompletedAt)
	t.LastProgressEventAt = truncTimePtr(t.LastProgressEventAt)
	if len(t.Params) == 0 {
		t.Params = json.RawMessage(`{}`)
	}
}

func notFound(id string) error {
	return commonops.Errorf(commonops.ENOTFOUND, "task %s not found", id)
}

// loadTask reads one task; an empty tenant matches any tenant.
func loadTask(ctx context.Context, q querier, tenant, id string) (*commonops.Task, error) {
	query := "SELECT " + taskColumns + " FROM tasks WHERE id = ?"
	args := []any{id}
	if tenant != "" {
		query += " AND tenant_id = ?"
		args = append(args, tenant)
	}
	t, err := scanTask(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(id)
	}
	return t, err
}

func insertTask(ctx context.Context, q querier, t *commonops.Task) error {
	_, err := q.ExecContext(ctx, "INSERT INTO tasks ("+taskColumns+") VALUES (?"+strings.Repeat(", ?", taskColumnCount-1)+")", taskArgs(t)...)
	return err
}

// saveTask writes t over the row at version old; false when the row moved on.
func saveTask(ctx context.Context, q querier, t *commonops.Task, old int64) (bool, error) {
	cols := strings.Split(taskColumns, ",")
	set := make([]string, 0, len(cols))
	for _, c := range cols[2:] { // id and tenant_id never change
		set = append(set, strings.TrimSpace(c)+" = ?")
	}
	args := append(taskArgs(t)[2:], t.ID, t.TenantID, old)
	res, err := q.ExecContext(ctx, "UPDATE tasks SET "+strings.Join(set, ", ")+" WHERE id = ? AND tenant_id = ? AND version = ?", args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// recordChange writes ch's task_events row and, with a topic of
// Config.Topics, its outbox row carrying the saved task (its header with
// Config.HeaderPayload, unless the change notifies) and ctx's traceparent
// (NULL for none), and for a terminal status the task's webhook
// deliveries. It reports whether it wrote an outbox row.
func (s *Store) recordChange(ctx context.Context, q querier, t *commonops.Task, ch commonops.Change) (bool, error) {
	if ch.Event == "" {
		return false, nil
	}
	data, err := commonops.AppendEventData(make([]byte, 0, 128), ch.Data, commonops.Actor(ctx))
	if err != nil {
		return false, fmt.Errorf("encode event data: %w", err)
	}
	if _, err := q.ExecContext(ctx, "INSERT INTO task_events (tenant_id, task_id, task_type, entity_type, status, requested_by, event_type, event_data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		t.TenantID, t.ID, t.TaskType, t.EntityType, string(t.Status), t.RequestedBy, ch.Event, string(data), micros(t.UpdatedAt)); err != nil {
		return false, fmt.Errorf("insert event: %w", err)
	}
	queued := s.topics.Has(ch.Topic)
	payload, err := store.ChangePayload(t, ch.Topic, queued, s.headerPayload)
	if err != nil {
		return false, fmt.Errorf("encode outbox payload: %w", err)
	}
	if queued {
		var tp any
		if v := commonops.TraceParent(ctx); v != "" {
			tp = v
		}
		if _, err := q.ExecContext(ctx, "INSERT INTO outbox (tenant_id, task_id, topic, payload, created_at, traceparent) VALUES (?, ?, ?, ?, ?, ?)",
			t.TenantID, t.ID, ch.Topic, string(payload), micros(s.now()), tp); err != nil {
			return false, fmt.Errorf("insert outbox: %w", err)
		}
	}
	if commonops.Notifies(ch.Topic) {
		if err := s.insertDeliveries(ctx, q, t, ch.Topic, payload); err != nil {
			return false, err
		}
	}
	return queued, nil
}

// CreateTask inserts t (its times truncated to the stored microseconds) and
// records ch. With idem, a key already taken returns the stored record and
// inserts nothing.
func (s *Store) CreateTask(ctx context.Context, t *commonops.Task, ch commonops.Change, idem *store.Idempotency) (*store.Idempotency, error) {
	normalize(t)
	var prior *store.Idempotency
	var wroteOutbox bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		if idem != nil {
			p, err := loadIdempotency(ctx, tx, idemTenant(idem, t), idem.Key)
			if err != nil {
				return err
			}
			if p != nil {
				prior = p
				return nil
			}
		}
		if err := insertTask(ctx, tx, t); err != nil {
			if isUniqueViolation(err) {
				return commonops.Errorf(commonops.ECONFLICT, "task %s already exists", t.ID)
			}
			return fmt.Errorf("insert task: %w", err)
		}
		var err error
		if wroteOutbox, err = s.recordChange(ctx, tx, t, ch); err != nil {
			return err
		}
		if idem != nil {
			return insertIdempotency(ctx, tx, idem, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w", t.ID, err)
	}
	if wroteOutbox && prior == nil {
		s.notify()
	}
	if prior == nil && !ch.None() {
		s.commits.Signal()
	}
	return prior, nil
}

// GetTask returns one task of tenant, or ENOTFOUND.
func (s *Store) GetTask(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	var t *commonops.Task
	err := s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		t, err = loadTask(ctx, tx, tenant, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	return t, nil
}

// UpdateTask loads the task, applies fn and saves the result with ch's rows
// in one write transaction. Writes are serialised, so the optimistic check
// on version never fails in one process; across processes a lost race
// answers ECONFLICT. A fn that changes nothing writes nothing.
func (s *Store) UpdateTask(ctx context.Context, tenant, id string, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error) {
	return s.updateTask(ctx, tenant, id, func(_ querier, t *commonops.Task) (commonops.Change, error) { return fn(t) })
}

// updateTask is UpdateTask whose fn may read in the write transaction.
func (s *Store) updateTask(ctx context.Context, tenant, id string, fn func(querier, *commonops.Task) (commonops.Change, error)) (*commonops.Task, error) {
	var saved *commonops.Task
	var wroteOutbox, recorded bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		recorded = false
		cur, err := loadTask(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		next := cur.Clone()
		ch, err := fn(tx, next)
		if err != nil {
			return err
		}
		next.ID, next.TenantID = cur.ID, cur.TenantID
		normalize(next)
		if ch.Event == "" && next.Version == cur.Version && reflect.DeepEqual(cur, next) {
			saved = cur
			return nil
		}
		if next.Version == cur.Version {
			next.Version++
		}
		ok, err := saveTask(ctx, tx, next, cur.Version)
		if err != nil {
			return fmt.Errorf("save task: %w", err)
		}
		if !ok {
			return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("task %s was changed by another writer", id), Task: cur}
		}
		if wroteOutbox, err = s.recordChange(ctx, tx, next, ch); err != nil {
			return err
		}
		saved, recorded = next, !ch.None()
		return nil
	})
	if err != nil {
		var de *commonops.Error
		if errors.As(err, &de) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("update task %s: %w", id, err)
	}
	if wroteOutbox {
		s.notify()
	}
	if recorded {
		s.commits.Signal()
	}
	return saved, nil
}

// DeleteTask deletes a terminal task with its logs, events and idempotency
// keys, and returns it. ECONFLICT when it is not terminal. Its outbox rows
// stay, so its last events are still published.
func (s *Store) DeleteTask(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	var t *commonops.Task
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = loadTask(ctx, tx, tenant, id); err != nil {
			return err
		}
		if !t.Status.Terminal() {
			return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("task %s is %s: only completed, failed or cancelled tasks can be deleted", id, t.Status), Task: t}
		}
		for _, q := range []string{
			"DELETE FROM task_logs WHERE task_id = ?",
			"DELETE FROM task_events WHERE task_id = ?",
			"DELETE FROM idempotency_keys WHERE task_id = ?",
			// Finished deliveries go with the task; pending ones are still sent.
			"DELETE FROM webhook_deliveries WHERE task_id = ? AND status <> 'pending'",
			"DELETE FROM tasks WHERE id = ?",
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete task %s: %w", id, err)
	}
	return t, nil
}

// likeEscape escapes LIKE wildcards with '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListTasks returns one page of tenant's tasks matching f, and the total
// (up to f.CountUpTo when set), under the read timeout. Sorting puts null
// values (scheduledAt, completedAt) last in either direction and breaks
// ties by id.
//
// Search is a scan of the tenant's tasks (narrowed by the other filters'
// indexes), bounded by the read timeout: SQLite has no index for a
// substring match short of an FTS5 trigram table, which would cost every
// progress report a rewrite of its index entries for a store that serves
// one machine.
func (s *Store) ListTasks(ctx context.Context, f commonops.ListFilter) ([]*commonops.Task, int, error) {
	sortBy := f.SortOrDefault()
	col, ok := store.SortColumns[sortBy.Field]
	if !ok {
		return nil, 0, commonops.Invalid(commonops.FieldError{Field: "sort", Message: "must be one of " + strings.Join(commonops.SortFields, ", ")})
	}
	page, size := pageBounds(f.Page, f.PageSize)

	where := []string{"tenant_id = ?"}
	args := []any{f.TenantID}
	if f.TaskType != "" {
		where, args = append(where, "task_type = ?"), append(args, f.TaskType)
	}
	if f.EntityType != "" {
		where, args = append(where, "entity_type = ?"), append(args, f.EntityType)
	}
	if f.RequestedBy != "" {
		where, args = append(where, "requested_by = ?"), append(args, f.RequestedBy)
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.StartDate != nil {
		where, args = append(where, "created_at >= ?"), append(args, micros(*f.StartDate))
	}
	if f.EndDate != nil {
		where, args = append(where, "created_at < ?"), append(args, micros(*f.EndDate))
	}
	if f.Search != "" {
		sub := "%" + likeEscape(strings.ToLower(f.Search)) + "%"
		where = append(where, `(lower(file_name) LIKE ? ESCAPE '\' OR lower(message) LIKE ? ESCAPE '\' OR lower(error_message) LIKE ? ESCAPE '\' OR id LIKE ? ESCAPE '\')`)
		args = append(args, sub, sub, sub, likeEscape(strings.ToLower(f.Search))+"%")
	}
	cond := strings.Join(where, " AND ")
	count, countArgs := "SELECT count(*) FROM tasks WHERE "+cond, slices.Clone(args)
	if f.CountUpTo > 0 {
		count = fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM tasks WHERE %s LIMIT %d)", cond, f.CountUpTo)
	}
	nullable := col == "scheduled_at" || col == "completed_at"
	dir, cmp := "ASC", ">"
	if sortBy.Desc {
		dir, cmp = "DESC", "<"
	}
	offset := (page - 1) * size
	if c := f.After; c != nil {
		if c.Sort != sortBy {
			return nil, 0, commonops.Invalid(commonops.FieldError{Field: "cursor", Message: "was returned for another sort"})
		}
		var key any
		switch k := c.Key.(type) {
		case time.Time:
			key = micros(k)
		case commonops.Status:
			key = string(k)
		default:
			key = k
		}
		switch {
		case key == nil && nullable:
			where, args = append(where, fmt.Sprintf("(%s IS NULL AND id %s ?)", col, cmp)), append(args, c.ID)
		case key == nil:
			return nil, 0, commonops.Invalid(commonops.FieldError{Field: "cursor", Message: "has no key for " + sortBy.Field})
		case nullable:
			where, args = append(where, fmt.Sprintf("(%s IS NULL OR (%s, id) %s (?, ?))", col, col, cmp)), append(args, key, c.ID)
		default:
			where, args = append(where, fmt.Sprintf("(%s, id) %s (?, ?)", col, cmp)), append(args, key, c.ID)
		}
		offset = 0
	}
	list := "SELECT " + taskColumns + " FROM tasks WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY %s %s NULLS LAST, id %s LIMIT ? OFFSET ?", col, dir, dir)
	var tasks []*commonops.Task
	var total int
	err := s.readBounded(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, count, countArgs...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, list, append(args, size, offset)...)
		if err != nil {
			return err
		}
		tasks, err = scanTasks(rows)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	return tasks, total, nil
}

func scanTasks(rows *sql.Rows) ([]*commonops.Task, error) {
	defer rows.Close()
	tasks := []*commonops.Task{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	}
	return tasks, rows.Err()
}

// pageBounds applies the paging defaults and bounds.
func pageBounds(page, size int) (int, int) {
	if page < 1 {
		page = 1
	}
	if size <= 0 {
		size = commonops.PageSizeDefault
	}
	return page, min(size, commonops.PageSizeMax)
}

// UpdateTaskFrom is UpdateTask: reading the task first costs nothing
// next to the write here.
func (s *Store) UpdateTaskFrom(ctx context.Context, known *commonops.Task, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error) {
	return s.UpdateTask(ctx, known.TenantID, known.ID, fn)
}

// ClaimTask claims one task in a write transaction: Claim, then the flow
// controls of its type, which the single writer reads and obeys with no
// claim of another connection in between.
func (s *Store) ClaimTask(ctx context.Context, tenant, id string, p store.ClaimParams) (*commonops.Task, error) {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	return s.updateTask(ctx, tenant, id, func(q querier, t *commonops.Task) (commonops.Change, error) {
		if err := t.CheckKind(p.Kinds); err != nil {
			return commonops.Change{}, err
		}
		cur := t.Clone()
		ch, err := t.Claim(p.WorkerID, p.Lease, now)
		if err != nil {
			return ch, err
		}
		f, err := loadFlow(ctx, q)
		if err != nil {
			return commonops.Change{}, err
		}
		room, paused := commonops.FlowRoom(f.controls, t.TenantID, t.TaskType, f.runningOf)
		if paused || room == 0 {
			return commonops.Change{}, commonops.Held(cur, paused)
		}
		return ch, nil
	})
}

// kindFilter turns kinds into one OR condition; "" when any task matches.
func kindFilter(kinds []commonops.Kind) (string, []any) {
	var ors []string
	var args []any
	for _, k := range kinds {
		var ands []string
		if k.TaskType != "*" {
			ands, args = append(ands, "task_type = ?"), append(args, k.TaskType)
		}
		if k.EntityType != "*" {
			ands, args = append(ands, "entity_type = ?"), append(args, k.EntityType)
		}
		if len(ands) == 0 {
			return "", nil
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	if len(ors) == 0 {
		return "", nil
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

// Sweep returns references to tasks matching f across tenants in id order,
// after f.AfterID (the keyset cursor, served by the primary key's index).
func (s *Store) Sweep(ctx context.Context, f store.SweepFilter) ([]store.TaskRef, error) {
	if f.Limit <= 0 {
		return nil, commonops.Invalid(commonops.FieldError{Field: "limit", Message: "must be positive"})
	}
	where := []string{"1 = 1"}
	var args []any
	if len(f.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.UploadStatus != "" {
		where, args = append(where, "upload_status = ?"), append(args, string(f.UploadStatus))
	}
	if len(f.UploadStatuses) > 0 {
		where = append(where, "upload_status IN (?"+strings.Repeat(", ?", len(f.UploadStatuses)-1)+")")
		for _, u := range f.UploadStatuses {
			args = append(args, string(u))
		}
	}
	for _, c := range []struct {
		col string
		at  *time.Time
	}{
		{"scheduled_at", f.ScheduledBefore}, {"lease_expires_at", f.LeaseExpiredBefore}, {"upload_expires_at", f.UploadExpiredBefore},
		{"created_at", f.CreatedBefore}, {"updated_at", f.UpdatedBefore}, {"completed_at", f.CompletedBefore},
	} {
		if c.at != nil {
			where, args = append(where, c.col+" <= ?"), append(args, micros(*c.at))
		}
	}
	if f.AvailableBefore != nil {
		where, args = append(where, "(available_at IS NULL OR available_at <= ?)"), append(args, micros(*f.AvailableBefore))
	}
	if f.DeadlineBefore != nil {
		where, args = append(where, "timeout_seconds IS NOT NULL AND started_at + timeout_seconds * 1000000 <= ?"), append(args, micros(*f.DeadlineBefore))
	}
	if f.AfterID != "" {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	var refs []store.TaskRef
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT tenant_id, id FROM tasks WHERE "+strings.Join(where, " AND ")+" ORDER BY id LIMIT ?", append(args, f.Limit)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r store.TaskRef
			if err := rows.Scan(&r.TenantID, &r.ID); err != nil {
				return err
			}
			refs = append(refs, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sweep tasks: %w", err)
	}
	return refs, nil
}

// CreateTasks is CreateTask of every item of batch in one write
// transaction.
func (s *Store) CreateTasks(ctx context.Context, batch []store.NewTask) ([]*store.Idempotency, error) {
	priors := make([]*store.Idempotency, len(batch))
	keys := make(map[[2]string]int, len(batch))
	for n, it := range batch {
		normalize(it.Task)
		if it.Idem == nil {
			continue
		}
		k := [2]string{idemTenant(it.Idem, it.Task), it.Idem.Key}
		if first, ok := keys[k]; ok {
			return nil, commonops.Errorf(commonops.EINVALID, "items %d and %d of the batch have the same idempotency key", first, n)
		}
		keys[k] = n
	}
	var wroteOutbox, inserted bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		clear(priors)
		wroteOutbox, inserted = false, false
		for n, it := range batch {
			t := it.Task
			if it.Idem != nil {
				p, err := loadIdempotency(ctx, tx, idemTenant(it.Idem, t), it.Idem.Key)
				if err != nil {
					return err
				}
				if p != nil {
					priors[n] = p
					continue
				}
			}
			if err := insertTask(ctx, tx, t); err != nil {
				if isUniqueViolation(err) {
					return commonops.Errorf(commonops.ECONFLICT, "task %s already exists", t.ID)
				}
				return fmt.Errorf("insert task %s: %w", t.ID, err)
			}
			inserted = true
			wrote, err := s.recordChange(ctx, tx, t, it.Change)
			if err != nil {
				return err
			}
			wroteOutbox = wroteOutbox || wrote
			if it.Idem != nil {
				if err := insertIdempotency(ctx, tx, it.Idem, t); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create %d tasks: %w", len(batch), err)
	}
	if wroteOutbox {
		s.notify()
	}
	if inserted {
		s.commits.Signal()
	}
	return priors, nil
}
