package bulk

import (
	"context"
	"fmt"
)

// Source yields an entity's records for export, one page at a time.
type Source interface {
	// Count returns how many records Read will yield, and false when the
	// source cannot tell cheaply.
	Count(ctx context.Context, params map[string]any) (int64, bool, error)
	// Read calls page with each page of records, in order, until the end or
	// page's first error. A page is only valid during the call.
	Read(ctx context.Context, params map[string]any, page func([]Record) error) error
	// Close releases the source's connections.
	Close() error
}

// OpenSource opens the source an entity is configured with.
func OpenSource(ctx context.Context, e *Entity) (Source, error) {
	if e.Source == nil {
		return nil, fmt.Errorf("entity %s has no export source", e.Name)
	}
	switch e.Source.Type {
	case "sql":
		return openSQLSource(e.Source, e.Fields)
	case "http":
		return newHTTPSource(e.Source), nil
	}
	return nil, fmt.Errorf("entity %s: unknown source type %q", e.Name, e.Source.Type)
}

func pageSize(n int) int {
	if n <= 0 {
		return PageSizeDefault
	}
	return n
}
