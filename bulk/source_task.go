package bulk

import (
	"context"
	"strings"
	"time"

	"github.com/commonops/commonops"
)

// TaskColumns are the columns of the built-in task export.
var TaskColumns = []string{"id", "taskType", "entityType", "status", "priority", "requestedBy",
	"fileName", "outputFileName", "progress", "totalItems", "processedItems", "successItems",
	"failedItems", "message", "errorMessage", "attempt", "retryCount", "maxRetries",
	"createdAt", "scheduledAt", "startedAt", "completedAt"}

// Tasks is what the task-history export reads; operations.Service
// provides it.
type Tasks interface {
	// CountTasks returns how many tasks match f.
	CountTasks(ctx context.Context, f commonops.ListFilter) (int64, error)
	// ExportTasks calls page with every task matching f, in f's order.
	ExportTasks(ctx context.Context, f commonops.ListFilter, page func([]*commonops.Task) error) error
}

// taskSource reads one tenant's task history, oldest first,
// filtered by the task params status (a comma list or a list), taskType,
// entityType, startDate and endDate (RFC 3339 or YYYY-MM-DD; createdAt in
// [startDate, endDate)).
type taskSource struct {
	tasks  Tasks
	tenant string
}

func (s *taskSource) Close() error { return nil }

func (s *taskSource) filter(params map[string]any) (commonops.ListFilter, error) {
	f := commonops.ListFilter{TenantID: s.tenant, Sort: commonops.Sort{Field: "createdAt"}, PageSize: commonops.PageSizeMax}
	str := func(k string) string { v, _ := params[k].(string); return v }
	f.TaskType, f.EntityType = str("taskType"), str("entityType")
	var statuses []string
	switch v := params["status"].(type) {
	case string:
		statuses = strings.Split(v, ",")
	case []any:
		for _, x := range v {
			s, _ := x.(string)
			statuses = append(statuses, s)
		}
	}
	for _, st := range statuses {
		st = strings.TrimSpace(st)
		if st == "" {
			continue
		}
		if !commonops.Status(st).Valid() {
			return f, invalidParams("params.status: unknown status %q", st)
		}
		f.Statuses = append(f.Statuses, commonops.Status(st))
	}
	for _, d := range []struct {
		key string
		dst **time.Time
	}{{"startDate", &f.StartDate}, {"endDate", &f.EndDate}} {
		v := str(d.key)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, v); err != nil {
				return f, invalidParams("params.%s: %q is not an RFC 3339 time or a date", d.key, v)
			}
		}
		*d.dst = &t
	}
	return f, nil
}

func (s *taskSource) Count(ctx context.Context, params map[string]any) (int64, bool, error) {
	f, err := s.filter(params)
	if err != nil {
		return 0, false, err
	}
	total, err := s.tasks.CountTasks(ctx, f)
	if err != nil {
		return 0, false, err
	}
	return total, true, nil
}

func (s *taskSource) Read(ctx context.Context, params map[string]any, page func([]Record) error) error {
	f, err := s.filter(params)
	if err != nil {
		return err
	}
	recs := make([]Record, 0, commonops.PageSizeMax)
	return s.tasks.ExportTasks(ctx, f, func(tasks []*commonops.Task) error {
		recs = recs[:0]
		for _, t := range tasks {
			recs = append(recs, taskRecord(t))
		}
		return page(recs)
	})
}

func taskRecord(t *commonops.Task) Record {
	opt := func(p any) any {
		switch p := p.(type) {
		case *string:
			if p != nil {
				return *p
			}
		case *int64:
			if p != nil {
				return *p
			}
		case *time.Time:
			if p != nil {
				return *p
			}
		}
		return nil
	}
	return Record{
		"id": t.ID, "taskType": t.TaskType, "entityType": t.EntityType, "status": string(t.Status),
		"priority": int64(t.Priority), "requestedBy": t.RequestedBy, "fileName": opt(t.FileName),
		"outputFileName": opt(t.OutputFileName), "progress": t.Progress, "totalItems": opt(t.TotalItems),
		"processedItems": t.ProcessedItems, "successItems": t.SuccessItems, "failedItems": t.FailedItems,
		"message": opt(t.Message), "errorMessage": opt(t.ErrorMessage), "attempt": int64(t.Attempt),
		"retryCount": int64(t.RetryCount), "maxRetries": int64(t.MaxRetries), "createdAt": t.CreatedAt,
		"scheduledAt": opt(t.ScheduledAt), "startedAt": opt(t.StartedAt), "completedAt": opt(t.CompletedAt),
	}
}
