package commonops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// TaskJSONSize is a buffer size that holds most tasks' JSON.
const TaskJSONSize = 1024

// AppendJSON appends t's JSON to b: byte for byte what encoding/json makes
// of the struct's fields and tags (HTML characters escaped, raw messages
// compacted), without its reflection. A task is encoded on every change,
// into its event's outbox row, and reflection was a quarter of the CPU of
// a batch create. TestTaskJSONMatchesEncodingJSON holds the two equal.
//
// Task has no MarshalJSON on purpose: encoding/json checks and compacts a
// Marshaler's output byte by byte, which cost more than its reflection
// saved. Callers on a hot path (the stores, the API's responses) call
// AppendJSON.
func (t *Task) AppendJSON(b []byte) ([]byte, error) {
	if t == nil {
		return append(b, "null"...), nil
	}
	var err error
	b = t.appendKey(b)
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(t.Priority), 10)
	b = append(b, `,"params":`...)
	if b, err = appendRawJSON(b, t.Params); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	b = append(b, `,"requestedBy":`...)
	b = appendJSONString(b, t.RequestedBy)
	b = append(b, `,"fileName":`...)
	b = appendOptString(b, t.FileName)
	b = append(b, `,"fileSize":`...)
	b = appendOptInt(b, t.FileSize)
	b = append(b, `,"contentType":`...)
	b = appendOptString(b, t.ContentType)
	b = append(b, `,"uploadStatus":`...)
	b = appendJSONString(b, string(t.UploadStatus))
	b = append(b, `,"uploadExpiresAt":`...)
	if b, err = appendOptTime(b, t.UploadExpiresAt); err != nil {
		return nil, err
	}
	b = append(b, `,"outputFileName":`...)
	b = appendOptString(b, t.OutputFileName)
	b = append(b, `,"errorsFileName":`...)
	b = appendOptString(b, t.ErrorsFileName)
	b = append(b, `,"progress":`...)
	if b, err = appendJSONFloat(b, t.Progress); err != nil {
		return nil, err
	}
	b = append(b, `,"totalItems":`...)
	b = appendOptInt(b, t.TotalItems)
	b = append(b, `,"totalItemsEstimated":`...)
	b = strconv.AppendBool(b, t.TotalItemsEstimated)
	b = append(b, `,"processedItems":`...)
	b = strconv.AppendInt(b, t.ProcessedItems, 10)
	b = append(b, `,"successItems":`...)
	b = strconv.AppendInt(b, t.SuccessItems, 10)
	b = append(b, `,"failedItems":`...)
	b = strconv.AppendInt(b, t.FailedItems, 10)
	b = append(b, `,"etaSeconds":`...)
	b = appendOptInt(b, t.EtaSeconds)
	b = append(b, `,"message":`...)
	b = appendOptString(b, t.Message)
	b = append(b, `,"errorMessage":`...)
	b = appendOptString(b, t.ErrorMessage)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(t.Attempt), 10)
	b = append(b, `,"retryCount":`...)
	b = strconv.AppendInt(b, int64(t.RetryCount), 10)
	b = append(b, `,"maxRetries":`...)
	b = strconv.AppendInt(b, int64(t.MaxRetries), 10)
	b = append(b, `,"cancelRequested":`...)
	b = strconv.AppendBool(b, t.CancelRequested)
	b = append(b, `,"checkpoint":`...)
	if b, err = appendRawJSON(b, t.Checkpoint); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	b = append(b, `,"leaseOwner":`...)
	b = appendOptString(b, t.LeaseOwner)
	for _, f := range [...]struct {
		name string
		at   *time.Time
	}{
		{`,"leaseExpiresAt":`, t.LeaseExpiresAt},
		{`,"availableAt":`, t.AvailableAt},
		{`,"scheduledAt":`, t.ScheduledAt},
		{`,"startedAt":`, t.StartedAt},
		{`,"completedAt":`, t.CompletedAt},
		{`,"createdAt":`, &t.CreatedAt},
		{`,"updatedAt":`, &t.UpdatedAt},
	} {
		b = append(b, f.name...)
		if b, err = appendOptTime(b, f.at); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, t.Version, 10)
	b = append(b, `,"callbackUrl":`...)
	b = appendOptString(b, t.CallbackURL)
	b = append(b, `,"timeoutSeconds":`...)
	if t.TimeoutSeconds == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*t.TimeoutSeconds), 10)
	}
	b = append(b, `,"awaitingWorker":`...)
	if w := t.AwaitingWorker; w == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"since":`...)
		if b, err = appendOptTime(b, &w.Since); err != nil {
			return nil, err
		}
		b = append(b, `,"waitedSeconds":`...)
		b = strconv.AppendInt(b, w.WaitedSeconds, 10)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// AppendHeaderJSON appends the JSON of t's header: the fields that name
// the task, its kind and the state a change left it in (id, tenantId,
// taskType, entityType, status, attempt, version, updatedAt), written as
// AppendJSON writes them, so it decodes into a Task with those fields set
// and the others zero. It is the outbox payload for a bus whose
// subscribers only learn which task changed and then read the store (the
// embedded bus's worker; the drivers' Config.HeaderPayload): about a fifth
// of the whole task's JSON, which PostgreSQL parses, logs and stores once
// per event.
func (t *Task) AppendHeaderJSON(b []byte) ([]byte, error) {
	if t == nil {
		return append(b, "null"...), nil
	}
	b = t.appendKey(b)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(t.Attempt), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, t.Version, 10)
	b = append(b, `,"updatedAt":`...)
	b, err := appendOptTime(b, &t.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendKey opens t's JSON object with the fields both encodings begin
// with: id, tenantId, taskType, entityType and status.
func (t *Task) appendKey(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, t.ID)
	b = append(b, `,"tenantId":`...)
	b = appendJSONString(b, t.TenantID)
	b = append(b, `,"taskType":`...)
	b = appendJSONString(b, t.TaskType)
	b = append(b, `,"entityType":`...)
	b = appendJSONString(b, t.EntityType)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(t.Status))
	return b
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

func appendOptInt(b []byte, n *int64) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *n, 10)
}

// appendOptTime appends *at as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds, an error outside years 0-9999), or null.
func appendOptTime(b []byte, at *time.Time) ([]byte, error) {
	if at == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '"')
	b, err := at.AppendText(b)
	if err != nil {
		return nil, fmt.Errorf("time %v: %w", at, err)
	}
	return append(b, '"'), nil
}

// appendJSONFloat appends f as encoding/json does for a float64.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("unsupported value: %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 to e-9, as encoding/json
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendRawJSON appends raw as encoding/json does for a json.RawMessage:
// null when empty, otherwise compacted, with <, >, &, U+2028 and U+2029
// escaped in its strings; an error when it is not JSON.
func appendRawJSON(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if bytes.ContainsAny(out[len(b):], "<>&\u2028\u2029") {
		var esc bytes.Buffer
		json.HTMLEscape(&esc, out[len(b):])
		out = append(out[:len(b)], esc.Bytes()...)
	}
	return out, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with HTML
// escaping (its default): <, >, & and U+2028, U+2029 as \u escapes,
// invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
