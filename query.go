package commonops

import "time"

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
	Page   int // 1-based
	// PageSize is the page length. Defaults to PageSizeDefault, at most PageSizeMax.
	PageSize int
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
