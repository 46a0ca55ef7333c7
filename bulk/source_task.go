package bulk

import (
	"context"
	"encoding/json"
	"slices"
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

// taskSource reads the task history of the export task's tenant, oldest
// first, without the export task itself, filtered by the task params status
// (a comma list or a list), taskType, entityType, startDate and endDate
// (RFC 3339 or YYYY-MM-DD; createdAt in [startDate, endDate)). Its params
// columns adds TaskExtraColumns after TaskColumns.
type taskSource struct {
	tasks Tasks
	// self is the export task: its tenant's tasks are read, and it is left
	// out of them (a running export is not history yet).
	self *commonops.Task
}

func (s *taskSource) Close() error { return nil }

// Columns returns base with the extra columns the export's params ask for.
func (s *taskSource) Columns(base []string) ([]string, error) {
	var params map[string]json.RawMessage
	if err := json.Unmarshal(s.self.Params, &params); err != nil || params["columns"] == nil || isNull(params["columns"]) {
		return base, nil
	}
	extra, err := parseTaskColumns(params["columns"])
	if err != nil {
		return nil, invalidParams("params.columns: %v", err)
	}
	cols := slices.Clone(base)
	for _, c := range extra {
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	return cols, nil
}

func (s *taskSource) filter(params map[string]any) (commonops.ListFilter, error) {
	f := commonops.ListFilter{TenantID: s.self.TenantID, Sort: commonops.Sort{Field: "createdAt"}, PageSize: commonops.PageSizeMax}
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
		if err := checkStatus(st); err != nil {
			return f, invalidParams("params.status: %v", err)
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
		t, err := parseDate(v)
		if err != nil {
			return f, invalidParams("params.%s: %v", d.key, err)
		}
		*d.dst = &t
	}
	return f, nil
}

// matches tells whether t is one of the tasks f selects.
func matches(t *commonops.Task, f commonops.ListFilter) bool {
	switch {
	case t.TenantID != f.TenantID,
		f.TaskType != "" && t.TaskType != f.TaskType,
		f.EntityType != "" && t.EntityType != f.EntityType,
		len(f.Statuses) > 0 && !slices.Contains(f.Statuses, t.Status),
		f.StartDate != nil && t.CreatedAt.Before(*f.StartDate),
		f.EndDate != nil && !t.CreatedAt.Before(*f.EndDate):
		return false
	}
	return true
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
	if total > 0 && matches(s.self, f) {
		total--
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
			if t.ID != s.self.ID {
				recs = append(recs, taskRecord(t))
			}
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
		"params": string(t.Params), "tenantId": t.TenantID,
	}
}
