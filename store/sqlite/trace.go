package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/commonops/commonops/internal/tracing"
)

// openDB opens the SQLite database dsn; while tracing is on, through
// otelsql, with a span for each statement run under a traced context (a
// request, a delivery, a run) and none for the rest (pollers, the relay's
// idle rounds), nor for row reads and connection upkeep.
func openDB(dsn string) (*sql.DB, error) {
	if !tracing.Enabled() {
		return sql.Open("sqlite", dsn)
	}
	return otelsql.Open("sqlite", dsn,
		otelsql.WithAttributes(attribute.String("db.system", "sqlite")),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitRows: true, OmitConnResetSession: true, OmitConnPrepare: true, OmitConnectorConnect: true,
			SpanFilter: func(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
				return trace.SpanContextFromContext(ctx).IsValid()
			},
		}))
}
