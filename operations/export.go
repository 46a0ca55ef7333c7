package operations

import (
	"context"
	"fmt"

	"github.com/commonops/commonops"
)

// CountTasks returns how many of the tenant's tasks match f (f's paging is
// ignored).
func (s *Service) CountTasks(ctx context.Context, f commonops.ListFilter) (int64, error) {
	f.Page, f.PageSize = 1, 1
	_, total, err := s.Store.ListTasks(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("count tasks: %w", err)
	}
	return int64(total), nil
}

// ExportTasks calls page with every task of f's tenant that matches f, in
// f's order, a page of at most commonops.PageSizeMax at a time, each read
// from the cursor after the last (so every page costs the same); it stops
// at the first error page returns. The export task of the task history
// reads the store this way.
func (s *Service) ExportTasks(ctx context.Context, f commonops.ListFilter, page func([]*commonops.Task) error) error {
	f.PageSize, f.Page, f.CountUpTo = commonops.PageSizeMax, 1, 1
	sort := f.SortOrDefault()
	for n := 1; ; n++ {
		tasks, _, err := s.Store.ListTasks(ctx, f)
		if err != nil {
			return fmt.Errorf("list tasks page %d: %w", n, err)
		}
		if len(tasks) > 0 {
			if err := page(tasks); err != nil {
				return err
			}
		}
		if len(tasks) < f.PageSize {
			return nil
		}
		after := commonops.CursorAfter(tasks[len(tasks)-1], sort, n+1)
		f.After = &after
	}
}
