package operations

import (
	"fmt"
	"strings"

	"github.com/commonops/commonops"
)

// Bounds that the Service checks on every caller's input, beside those of
// the root package.
const (
	// MaxWorkerIDLen bounds a claiming worker's id.
	MaxWorkerIDLen = 128
	// MaxPage bounds a list's page number, so that the offset of its first
	// row stays within int32.
	MaxPage = 1 << 31 / commonops.PageSizeMax
	// MaxSearchLen bounds a list's search text.
	MaxSearchLen = 256
	// LogsPageSizeMax bounds a page of a task's logs.
	LogsPageSizeMax = 1000
)

// fieldErrors collects the problems of one input, so a caller learns all
// of them at once.
type fieldErrors []commonops.FieldError

func (fe *fieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, commonops.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (fe fieldErrors) err() error {
	if len(fe) > 0 {
		return commonops.Invalid(fe...)
	}
	return nil
}

// checkClaim refuses a worker id that is missing, too long or not
// printable, and a lease outside 0 (the default) to LeaseMax.
func checkClaim(workerID string, leaseSeconds int) error {
	var fe fieldErrors
	checkWorkerID(&fe, workerID)
	if r := IntRanges["leaseSeconds"]; int64(leaseSeconds) < r.Min || int64(leaseSeconds) > r.Max {
		fe.add("leaseSeconds", "must be %s (0: the default lease)", r)
	}
	return fe.err()
}

func checkWorkerID(fe *fieldErrors, workerID string) {
	switch {
	case workerID == "":
		fe.add("workerId", "is required")
	case len(workerID) > MaxWorkerIDLen || !commonops.Printable(workerID):
		fe.add("workerId", "must be printable text of at most %d characters", MaxWorkerIDLen)
	}
}

// checkAttempt refuses an attempt number outside 1 to
// commonops.MaxAttempt; nil is no attempt.
func checkAttempt(fe *fieldErrors, attempt *int) {
	if r := IntRanges["attempt"]; attempt != nil && (int64(*attempt) < r.Min || int64(*attempt) > r.Max) {
		fe.add("attempt", "must be %s", r)
	}
}

// ListProblems returns what is wrong with f, field by field: the bounds
// List holds every caller to (zero Page and PageSize take their defaults).
// httpapi reports them together with the problems of reading its query
// string, so that one request learns all of them.
func ListProblems(f commonops.ListFilter) []commonops.FieldError {
	var fe fieldErrors
	checkPage(&fe, f.Page, f.PageSize, commonops.PageSizeMax)
	checkLen(&fe, "taskType", f.TaskType, commonops.MaxNameLen)
	checkLen(&fe, "entityType", f.EntityType, commonops.MaxNameLen)
	checkLen(&fe, "requestedBy", f.RequestedBy, commonops.MaxRequestedByLen)
	checkLen(&fe, "search", f.Search, MaxSearchLen)
	for _, st := range f.Statuses {
		if !st.Valid() {
			fe.add("status", "unknown status %q; valid statuses are %s", commonops.Shorten(string(st), 32), joinStatuses())
		}
	}
	if f.StartDate != nil && f.EndDate != nil && !f.StartDate.Before(*f.EndDate) {
		fe.add("endDate", "must be after startDate")
	}
	return fe
}

// LogProblems is ListProblems of a log filter.
func LogProblems(f commonops.LogFilter) []commonops.FieldError {
	var fe fieldErrors
	checkPage(&fe, f.Page, f.PageSize, LogsPageSizeMax)
	if f.Level != "" && !f.Level.Valid() {
		fe.add("level", "must be debug, info, warn or error")
	}
	return fe
}

func checkPage(fe *fieldErrors, page, pageSize, maxSize int) {
	if page < 0 || page > MaxPage {
		fe.add("page", "must be an integer from %d to %d", 1, MaxPage)
	}
	if pageSize < 0 || pageSize > maxSize {
		fe.add("pageSize", "must be an integer from %d to %d", 1, maxSize)
	}
}

func checkLen(fe *fieldErrors, field, v string, maxLen int) {
	if len(v) > maxLen {
		fe.add(field, "must be at most %d characters", maxLen)
	}
}

func joinStatuses() string {
	names := make([]string, len(commonops.Statuses))
	for i, st := range commonops.Statuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// errNoObjects answers the file calls of a Service without an object store.
func errNoObjects() error {
	return commonops.Errorf(commonops.EUNAVAILABLE, "file storage is not configured")
}
