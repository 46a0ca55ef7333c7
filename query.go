package commonops

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"time"
)

// ListFilter selects a page of one tenant's tasks. Zero fields do not filter.
type ListFilter struct {
	TenantID    string
	TaskType    string
	EntityType  string
	RequestedBy string
	Statuses    []Status
	StartDate   *time.Time // createdAt >= StartDate
	EndDate     *time.Time // createdAt < EndDate
	// Search matches a substring of the file name, message or error message,
	// or a task id prefix; case-insensitive.
	Search string
	Sort   Sort
	// Page is the 1-based page number, read at an offset: a deep page costs
	// as much as every page before it. After is the cheap way to page.
	Page int
	// PageSize is the page length. Defaults to PageSizeDefault, at most PageSizeMax.
	PageSize int
	// After, when set, starts the page right after this position (keyset
	// pagination), so a deep page costs what the first one does; Page is
	// then ignored. After.Sort must be the list's Sort (DefaultSort when
	// Sort is zero).
	After *Cursor
	// CountUpTo, when positive, stops counting the matching tasks there:
	// the total is then min(matching, CountUpTo). Zero counts them all.
	CountUpTo int
}

// EventFilter selects a tenant's events (GET /events): those with an id
// above AfterID whose fields match every filter that is set.
type EventFilter struct {
	TenantID    string
	AfterID     int64
	TaskType    string
	EntityType  string
	RequestedBy string
	Statuses    []Status // the task's status after the change; any of them
	// Limit bounds a page. Defaults to PageSizeMax, at most PageSizeMax.
	Limit int
}

// Match reports whether e is one of f's events, AfterID aside: the
// predicate of a live tenant stream, which the stores' filter mirrors.
func (f EventFilter) Match(e Event) bool {
	return e.TenantID == f.TenantID &&
		(f.TaskType == "" || e.TaskType == f.TaskType) &&
		(f.EntityType == "" || e.EntityType == f.EntityType) &&
		(f.RequestedBy == "" || e.RequestedBy == f.RequestedBy) &&
		(len(f.Statuses) == 0 || slices.Contains(f.Statuses, e.Status))
}

// SortOrDefault is the list's order: Sort, or DefaultSort when Sort is zero.
func (f ListFilter) SortOrDefault() Sort {
	if f.Sort.Field == "" {
		return DefaultSort
	}
	return f.Sort
}

// Paging bounds of list endpoints.
const (
	PageSizeDefault = 20
	PageSizeMax     = 1000
)

// Sort is a list order: a field and a direction.
type Sort struct {
	Field string // one of SortFields
	Desc  bool
}

// SortFields are the task fields a list can be sorted by (JSON names).
var SortFields = []string{"createdAt", "updatedAt", "priority", "status", "progress", "scheduledAt", "completedAt"}

// DefaultSort is newest first.
var DefaultSort = Sort{Field: "createdAt", Desc: true}

// TotalCapDefault is how far a list counts the matching tasks unless the
// exact total is asked for: counting stops there, so a broad filter over
// millions of tasks costs a bounded count.
const TotalCapDefault = 10_000

// Cursor is a position in a sorted list of tasks: the sort key and the id
// of the last task of a page, so the next page starts right after it
// whatever was inserted or deleted before it. Its text form (String,
// ParseCursor) is opaque to clients.
type Cursor struct {
	Sort Sort
	// Key is the last task's value of Sort.Field: a time.Time for the time
	// fields (nil for a null scheduledAt or completedAt), an int for
	// priority, a float64 for progress, a Status for status.
	Key any
	ID  string
	// Page is the number of the page that starts after this position, so
	// a list read by cursor still tells which page it is.
	Page int
}

// CursorAfter is the position right after t in a list sorted by sort, the
// start of page page.
func CursorAfter(t *Task, sort Sort, page int) Cursor {
	c := Cursor{Sort: sort, ID: t.ID, Page: page}
	switch sort.Field {
	case "createdAt":
		c.Key = t.CreatedAt
	case "updatedAt":
		c.Key = t.UpdatedAt
	case "scheduledAt":
		if t.ScheduledAt != nil {
			c.Key = *t.ScheduledAt
		}
	case "completedAt":
		if t.CompletedAt != nil {
			c.Key = *t.CompletedAt
		}
	case "priority":
		c.Key = t.Priority
	case "progress":
		c.Key = t.Progress
	case "status":
		c.Key = t.Status
	}
	return c
}

// cursorText is the JSON inside a cursor's text form.
type cursorText struct {
	Field string          `json:"f"`
	Desc  bool            `json:"d,omitempty"`
	Key   json.RawMessage `json:"k"`
	ID    string          `json:"i"`
	Page  int             `json:"p"`
}

// String is the cursor's opaque text form: unpadded base64url of a small
// JSON object.
func (c Cursor) String() string {
	key := c.Key
	if t, ok := key.(time.Time); ok {
		key = t.UTC().Format(time.RFC3339Nano)
	}
	k, err := json.Marshal(key)
	if err != nil { // every Key type marshals; a NaN progress cannot be stored
		k = []byte("null")
	}
	b, _ := json.Marshal(cursorText{Field: c.Sort.Field, Desc: c.Sort.Desc, Key: k, ID: c.ID, Page: c.Page})
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxCursorLen bounds the text of a cursor: one is about 150 characters.
const maxCursorLen = 512

// ParseCursor reads the text form of a Cursor. Anything that String did not
// produce is EINVALID on the field "cursor".
func ParseCursor(s string) (Cursor, error) {
	bad := func(why string) (Cursor, error) {
		return Cursor{}, Invalid(FieldError{Field: "cursor", Message: "is not a cursor this API returned (" + why + ")"})
	}
	if len(s) > maxCursorLen {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64url")
	}
	var ct cursorText
	if err := json.Unmarshal(b, &ct); err != nil {
		return bad("not its JSON")
	}
	if !slices.Contains(SortFields, ct.Field) || ct.ID == "" || len(ct.ID) > 64 || ct.Page < 2 {
		return bad("unknown field, id or page")
	}
	c := Cursor{Sort: Sort{Field: ct.Field, Desc: ct.Desc}, ID: ct.ID, Page: ct.Page}
	null := string(ct.Key) == "null" || len(ct.Key) == 0
	switch ct.Field {
	case "createdAt", "updatedAt", "scheduledAt", "completedAt":
		if null {
			if ct.Field == "createdAt" || ct.Field == "updatedAt" {
				return bad("null key")
			}
			return c, nil
		}
		var text string
		if err := json.Unmarshal(ct.Key, &text); err != nil {
			return bad("key is not a time")
		}
		t, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return bad("key is not a time")
		}
		c.Key = t.UTC()
	case "priority":
		var n int
		if null || json.Unmarshal(ct.Key, &n) != nil {
			return bad("key is not an integer")
		}
		c.Key = n
	case "progress":
		var x float64
		if null || json.Unmarshal(ct.Key, &x) != nil || math.IsNaN(x) {
			return bad("key is not a number")
		}
		c.Key = x
	case "status":
		var st string
		if null || json.Unmarshal(ct.Key, &st) != nil {
			return bad("key is not a status")
		}
		c.Key = Status(st)
	}
	return c, nil
}

// Kind is a (taskType, entityType) pair; "*" matches any value.
type Kind struct {
	TaskType   string
	EntityType string
}

// Matches reports whether a task of (taskType, entityType) is of kind k.
func (k Kind) Matches(taskType, entityType string) bool {
	return (k.TaskType == "*" || k.TaskType == taskType) && (k.EntityType == "*" || k.EntityType == entityType)
}

// LogFilter selects a page of a task's logs.
type LogFilter struct {
	TenantID string
	TaskID   string
	Level    LogLevel // "" for all
	Page     int
	PageSize int
}
