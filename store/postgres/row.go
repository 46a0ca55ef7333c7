package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
)

// column is one tasks column and its SQL type, in the order of taskArgs and
// scanTask.
type column struct{ name, typ string }

var taskColumnList = []column{
	{"id", "text"}, {"tenant_id", "text"}, {"task_type", "text"}, {"entity_type", "text"},
	{"status", "text"}, {"priority", "integer"}, {"params", "json"}, {"requested_by", "text"},
	{"file_name", "text"}, {"file_size", "bigint"}, {"content_type", "text"},
	{"upload_status", "text"}, {"upload_expires_at", "timestamptz"},
	{"output_file_name", "text"}, {"errors_file_name", "text"},
	{"progress", "double precision"}, {"total_items", "bigint"}, {"processed_items", "bigint"},
	{"success_items", "bigint"}, {"failed_items", "bigint"},
	{"message", "text"}, {"error_message", "text"},
	{"attempt", "integer"}, {"retry_count", "integer"}, {"max_retries", "integer"},
	{"cancel_requested", "boolean"}, {"checkpoint", "json"},
	{"lease_owner", "text"}, {"lease_expires_at", "timestamptz"}, {"available_at", "timestamptz"},
	{"scheduled_at", "timestamptz"}, {"started_at", "timestamptz"}, {"completed_at", "timestamptz"},
	{"created_at", "timestamptz"}, {"updated_at", "timestamptz"}, {"version", "bigint"},
	{"last_progress_event_at", "timestamptz"},
	{"input_etag", "text"}, {"output_object", "text"}, {"output_etag", "text"},
	{"stored_bytes", "bigint"},
	{"total_items_estimated", "boolean"}, {"eta_seconds", "bigint"},
	{"callback_url", "text"},
	{"timeout_seconds", "integer"},
}

// taskColumns is the select list that scanTask reads.
var taskColumns = strings.Join(columnNames(taskColumnList), ", ")

// columnNames are the names of cols.
func columnNames(cols []column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return names
}

// qualified is the column list with each name prefixed by table.
func qualified(table string, cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = table + "." + c.name
	}
	return strings.Join(names, ", ")
}

// taskArgs returns t's column values in taskColumnList order.
func taskArgs(t *commonops.Task) []any {
	return []any{
		t.ID, t.TenantID, t.TaskType, t.EntityType,
		string(t.Status), t.Priority, jsonArg(t.Params, "{}"), t.RequestedBy,
		t.FileName, t.FileSize, t.ContentType,
		string(t.UploadStatus), t.UploadExpiresAt,
		t.OutputFileName, t.ErrorsFileName,
		t.Progress, t.TotalItems, t.ProcessedItems,
		t.SuccessItems, t.FailedItems,
		t.Message, t.ErrorMessage,
		t.Attempt, t.RetryCount, t.MaxRetries,
		t.CancelRequested, jsonArg(t.Checkpoint, ""),
		t.LeaseOwner, t.LeaseExpiresAt, t.AvailableAt,
		t.ScheduledAt, t.StartedAt, t.CompletedAt,
		t.CreatedAt, t.UpdatedAt, t.Version,
		t.LastProgressEventAt,
		t.InputETag, t.OutputObject, t.OutputETag,
		t.StoredBytes,
		t.TotalItemsEstimated, t.EtaSeconds,
		t.CallbackURL,
		t.TimeoutSeconds,
	}
}

// jsonArg passes raw JSON to a json parameter; empty is def, or NULL when
// def is empty.
func jsonArg(raw json.RawMessage, def string) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		if def == "" {
			return nil
		}
		return def
	}
	return string(raw)
}

// scanTask reads one row of taskColumns, then into extra any columns that
// follow them.
func scanTask(row pgx.Row, extra ...any) (*commonops.Task, error) {
	var t commonops.Task
	var status, upload string
	var params, checkpoint []byte
	err := row.Scan(append([]any{
		&t.ID, &t.TenantID, &t.TaskType, &t.EntityType,
		&status, &t.Priority, &params, &t.RequestedBy,
		&t.FileName, &t.FileSize, &t.ContentType,
		&upload, &t.UploadExpiresAt,
		&t.OutputFileName, &t.ErrorsFileName,
		&t.Progress, &t.TotalItems, &t.ProcessedItems,
		&t.SuccessItems, &t.FailedItems,
		&t.Message, &t.ErrorMessage,
		&t.Attempt, &t.RetryCount, &t.MaxRetries,
		&t.CancelRequested, &checkpoint,
		&t.LeaseOwner, &t.LeaseExpiresAt, &t.AvailableAt,
		&t.ScheduledAt, &t.StartedAt, &t.CompletedAt,
		&t.CreatedAt, &t.UpdatedAt, &t.Version,
		&t.LastProgressEventAt,
		&t.InputETag, &t.OutputObject, &t.OutputETag,
		&t.StoredBytes,
		&t.TotalItemsEstimated, &t.EtaSeconds,
		&t.CallbackURL,
		&t.TimeoutSeconds,
	}, extra...)...)
	if err != nil {
		return nil, err
	}
	t.Status, t.UploadStatus = commonops.Status(status), commonops.UploadStatus(upload)
	t.Params, t.Checkpoint = rawJSON(params), rawJSON(checkpoint)
	normalizeTimes(&t)
	return &t, nil
}

// rawJSON returns a json column's text as stored (nil for NULL).
func rawJSON(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// normalize gives t the values the database gives back (times in UTC at
// microsecond precision, params never empty), so a task written and a task
// read back are equal.
func normalize(t *commonops.Task) {
	if len(t.Params) == 0 {
		t.Params = json.RawMessage(`{}`)
	}
	normalizeTimes(t)
}

func normalizeTimes(t *commonops.Task) {
	t.CreatedAt = dbTime(t.CreatedAt)
	t.UpdatedAt = dbTime(t.UpdatedAt)
	for _, p := range []**time.Time{&t.UploadExpiresAt, &t.LeaseExpiresAt, &t.AvailableAt, &t.ScheduledAt, &t.StartedAt, &t.CompletedAt, &t.LastProgressEventAt} {
		if *p != nil {
			v := dbTime(**p)
			*p = &v
		}
	}
}

// dbTime is tm as PostgreSQL stores it: UTC, microseconds.
func dbTime(tm time.Time) time.Time {
	if tm.IsZero() {
		return tm
	}
	return tm.Truncate(time.Microsecond).UTC()
}

// placeholders returns "$from::type, ..." for the given columns.
func placeholders(cols []column, from int) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d::%s", from+i, c.typ)
	}
	return b.String()
}
