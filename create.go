package commonops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Defaults and bounds of task creation. Limits carries the configurable ones.
const (
	MaxRetriesDefault = 3
	MaxRetriesLimit   = 100
	PriorityMin       = -1000
	PriorityMax       = 1000
	MaxNameLen        = 64  // taskType, entityType
	MaxRequestedByLen = 256 // requestedBy
	MaxFileNameLen    = 255 // bytes, after sanitising
	MaxContentTypeLen = 255
	MaxScheduleAhead  = 366 * 24 * time.Hour
	MaxCallbackURLLen = 2048
	// MaxTimeoutSeconds bounds timeoutSeconds: 7 days.
	MaxTimeoutSeconds = 7 * 24 * 3600
	// MaxParamsBytesDefault bounds params' JSON. Defaults to 64 KiB.
	MaxParamsBytesDefault = 64 << 10
	// MaxFileSizeDefault bounds an input file. Defaults to 5 GiB, the most a
	// single pre-signed S3 PUT takes.
	MaxFileSizeDefault = 5 << 30
)

// Limits are the configurable bounds of task creation.
type Limits struct {
	MaxParamsBytes int   // Defaults to MaxParamsBytesDefault.
	MaxFileSize    int64 // Defaults to MaxFileSizeDefault.
}

func (l Limits) withDefaults() Limits {
	if l.MaxParamsBytes <= 0 {
		l.MaxParamsBytes = MaxParamsBytesDefault
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = MaxFileSizeDefault
	}
	return l
}

// CreateInput is the body of POST /tasks.
type CreateInput struct {
	TaskType    string          `json:"taskType"`
	EntityType  string          `json:"entityType"`
	Params      json.RawMessage `json:"params,omitempty"`
	FileName    *string         `json:"fileName,omitempty"`
	FileSize    *int64          `json:"fileSize,omitempty"`
	ContentType *string         `json:"contentType,omitempty"`
	Priority    *int            `json:"priority,omitempty"`
	ScheduledAt *time.Time      `json:"scheduledAt,omitempty"`
	MaxRetries  *int            `json:"maxRetries,omitempty"`
	RequestedBy *string         `json:"requestedBy,omitempty"`
	// CallbackURL receives the task's terminal status; package webhook
	// checks where it may point.
	CallbackURL *string `json:"callbackUrl,omitempty"`
	// TimeoutSeconds bounds each attempt (see Task.TimeoutSeconds).
	TimeoutSeconds *int `json:"timeoutSeconds,omitempty"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:\-]*$`)

// NewTask validates in and returns the task it creates, owned by tenant and
// defaulting requestedBy to requester. The task is pending, scheduled (a
// future scheduledAt) and, with a fileName, awaiting its upload. It returns
// the Change that creation records: its topic is set only when the task is
// runnable at once.
func NewTask(id, tenant, requester string, in CreateInput, limits Limits, now time.Time) (*Task, Change, error) {
	limits = limits.withDefaults()
	var fields []FieldError
	add := func(field, format string, args ...any) {
		fields = append(fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	checkName := func(field, v string) {
		if msg := NameProblem(v); msg != "" {
			add(field, "%s", msg)
		}
	}
	checkName("taskType", in.TaskType)
	checkName("entityType", in.EntityType)

	t := &Task{
		ID:           id,
		TenantID:     tenant,
		TaskType:     in.TaskType,
		EntityType:   in.EntityType,
		Status:       StatusPending,
		Params:       json.RawMessage(`{}`),
		RequestedBy:  requester,
		UploadStatus: UploadNone,
		MaxRetries:   MaxRetriesDefault,
		CreatedAt:    now,
		UpdatedAt:    now,
		Version:      1,
	}
	if p := bytes.TrimSpace(in.Params); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		if p[0] != '{' {
			add("params", "must be a JSON object")
		} else if len(p) > limits.MaxParamsBytes {
			return nil, Change{}, Errorf(ETOOLARGE, "params is %d bytes; the limit is %d", len(p), limits.MaxParamsBytes)
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, p); err != nil {
				add("params", "is not valid JSON")
			} else {
				t.Params = buf.Bytes()
			}
		}
	}
	if in.Priority != nil {
		if *in.Priority < PriorityMin || *in.Priority > PriorityMax {
			add("priority", "must be from %d to %d", PriorityMin, PriorityMax)
		}
		t.Priority = *in.Priority
	}
	if in.MaxRetries != nil {
		if *in.MaxRetries < 0 || *in.MaxRetries > MaxRetriesLimit {
			add("maxRetries", "must be from 0 to %d", MaxRetriesLimit)
		}
		t.MaxRetries = *in.MaxRetries
	}
	if in.TimeoutSeconds != nil {
		if *in.TimeoutSeconds < 1 || *in.TimeoutSeconds > MaxTimeoutSeconds {
			add("timeoutSeconds", "must be from 1 to %d", MaxTimeoutSeconds)
		}
		v := *in.TimeoutSeconds
		t.TimeoutSeconds = &v
	}
	if in.RequestedBy != nil {
		switch {
		case len(*in.RequestedBy) > MaxRequestedByLen:
			add("requestedBy", "must be at most %d bytes", MaxRequestedByLen)
		case !printable(*in.RequestedBy):
			add("requestedBy", "must be printable UTF-8 text")
		case *in.RequestedBy != "":
			t.RequestedBy = *in.RequestedBy
		}
	}
	if in.ScheduledAt != nil {
		at := in.ScheduledAt.UTC()
		switch {
		case at.After(now.Add(MaxScheduleAhead)):
			add("scheduledAt", "must be at most %d days ahead", int(MaxScheduleAhead.Hours()/24))
		case at.After(now):
			t.Status = StatusScheduled
		}
		t.ScheduledAt = &at
	}
	if in.FileName != nil {
		name, err := SanitizeFileName(*in.FileName)
		if err != nil {
			add("fileName", "%v", err)
		} else {
			t.FileName = &name
			t.UploadStatus = UploadAwaiting
		}
	}
	if in.FileSize != nil {
		switch {
		case in.FileName == nil:
			add("fileSize", "is only allowed with fileName")
		case *in.FileSize < 0:
			add("fileSize", "must be from 0 to %d", int64(math.MaxInt64))
		case *in.FileSize > limits.MaxFileSize:
			return nil, Change{}, Errorf(ETOOLARGE, "fileSize %d is over the limit of %d bytes", *in.FileSize, limits.MaxFileSize)
		}
		t.FileSize = in.FileSize
	}
	if in.ContentType != nil {
		switch {
		case in.FileName == nil:
			add("contentType", "is only allowed with fileName")
		case len(*in.ContentType) > MaxContentTypeLen || !printable(*in.ContentType) || strings.ContainsAny(*in.ContentType, "\r\n"):
			add("contentType", "must be a media type of at most %d characters", MaxContentTypeLen)
		}
		t.ContentType = in.ContentType
	}
	if in.CallbackURL != nil && *in.CallbackURL != "" {
		if len(*in.CallbackURL) > MaxCallbackURLLen {
			add("callbackUrl", "must be at most %d bytes", MaxCallbackURLLen)
		}
		t.CallbackURL = in.CallbackURL
	}
	if len(fields) > 0 {
		return nil, Change{}, Invalid(fields...)
	}
	topic := ""
	if t.Runnable(now) {
		topic = TopicCreated
	}
	return t, change(EventCreated, topic, "", t.Status, "uploadStatus", t.UploadStatus), nil
}

// NameProblem says what is wrong with v as a taskType or entityType, or ""
// when nothing is.
func NameProblem(v string) string {
	switch {
	case v == "":
		return "is required"
	case len(v) > MaxNameLen:
		return fmt.Sprintf("must be at most %d characters", MaxNameLen)
	case !namePattern.MatchString(v):
		return "must start with a letter or digit and contain only letters, digits, '_', '.', ':' and '-'"
	}
	return ""
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ValidText reports whether s can be stored as text: valid UTF-8 without NUL
// characters (which PostgreSQL refuses).
func ValidText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Printable reports whether s is valid UTF-8 made of printable characters
// and spaces (no control or format characters): identity headers, worker
// ids and other names quoted back in messages and logs.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// Shorten cuts s to at most n bytes, marking the cut with "...", for
// quoting client input back in a message.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 character.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// SanitizeFileName returns the base name of name with control characters
// removed, bounded to MaxFileNameLen bytes (keeping the extension). It
// refuses names that are empty or only dots once cleaned.
func SanitizeFileName(name string) (string, error) {
	name = strings.ToValidUTF8(name, "")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '"' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if strings.Trim(name, ".") == "" {
		return "", errors.New("must name a file (not empty, not a path, not only dots)")
	}
	if len(name) > MaxFileNameLen {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		stem := name[:MaxFileNameLen-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	return name, nil
}
