package operations

import (
	"context"

	"github.com/commonops/commonops"
)

// ListPage is one page of a task list, as GET /tasks answers it.
type ListPage struct {
	Tasks []*commonops.Task
	// Total counts the matching tasks, up to the cap the filter asked for;
	// TotalCapped tells that more match than Total.
	Total       int
	TotalCapped bool
	// Page is the page's number: the filter's Page, or its cursor's.
	Page     int
	PageSize int
	// NextCursor is the position after the page's last task, set when the
	// page is full (the next page may then be empty).
	NextCursor *commonops.Cursor
}

// ListPage returns one page of tenant's tasks matching f, from f.After when
// it is set, counting the matching tasks up to f.CountUpTo when it is
// positive (all of them otherwise). A filter out of bounds (see
// ListProblems) or a cursor of another sort is EINVALID.
func (s *Service) ListPage(ctx context.Context, f commonops.ListFilter) (ListPage, error) {
	if fe := ListProblems(f); len(fe) > 0 {
		return ListPage{}, commonops.Invalid(fe...)
	}
	if !scopeOf(ctx).narrowList(&f) {
		return ListPage{Page: max(f.Page, 1), PageSize: f.PageSize}, nil
	}
	sort := f.SortOrDefault()
	if f.After != nil && f.After.Sort != sort {
		return ListPage{}, commonops.Invalid(commonops.FieldError{Field: "cursor", Message: "was returned for another sort; send the sort it was returned for"})
	}
	page, size := max(f.Page, 1), f.PageSize
	if size <= 0 {
		size = commonops.PageSizeDefault
	}
	if f.After != nil {
		page = f.After.Page
	}
	capAt := f.CountUpTo
	if capAt > 0 {
		f.CountUpTo = capAt + 1 // one more tells "more than the cap" from "exactly the cap"
	}
	tasks, total, err := s.Store.ListTasks(ctx, f)
	if err != nil {
		return ListPage{}, err
	}
	p := ListPage{Tasks: tasks, Total: total, Page: page, PageSize: size}
	if capAt > 0 && total > capAt {
		p.Total, p.TotalCapped = capAt, true
	}
	if len(tasks) == size {
		c := commonops.CursorAfter(tasks[len(tasks)-1], sort, page+1)
		p.NextCursor = &c
	}
	return p, nil
}
