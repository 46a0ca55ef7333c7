package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/tracing"
)

// maxStatementText bounds the statement text a span carries.
const maxStatementText = 2048

// queryTracer is the pgx tracer Open installs while tracing is on: one
// span per statement and per batch run under a traced context (a request,
// a delivery, a run). Statements outside any trace (pollers, the relay's
// idle rounds, leadership) start none, so they do not flood the collector
// with one-span traces.
type queryTracer struct{}

// statementSpanKey holds the span queryTracer started, so the end hook
// ends that span and never the caller's.
type statementSpanKey struct{}

var (
	_ pgx.QueryTracer = queryTracer{}
	_ pgx.BatchTracer = queryTracer{}
)

func (queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return startStatement(ctx, data.SQL)
}

func (queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	endStatement(ctx, data.Err)
}

func (queryTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	n := 0
	if data.Batch != nil {
		n = data.Batch.Len()
	}
	ctx = startStatement(ctx, "BATCH")
	if span, ok := ctx.Value(statementSpanKey{}).(trace.Span); ok {
		span.SetAttributes(attribute.Int("db.operation.batch.size", n))
	}
	return ctx
}

func (queryTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	endStatement(ctx, data.Err)
}

// traced reports whether ctx belongs to a trace.
func traced(ctx context.Context) bool {
	return trace.SpanContextFromContext(ctx).IsValid() || commonops.TraceParent(ctx) != ""
}

// startStatement starts the span of the statement sql when ctx is traced.
func startStatement(ctx context.Context, sql string) context.Context {
	if !tracing.Enabled() || !traced(ctx) {
		return ctx
	}
	ctx, span := tracing.Start(ctx, "db "+operation(sql), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"),
			attribute.String("db.query.text", commonops.Truncate(sql, maxStatementText))))
	return context.WithValue(ctx, statementSpanKey{}, span)
}

// endStatement ends the span startStatement put in ctx, if any; no row
// is not a failure.
func endStatement(ctx context.Context, err error) {
	if span, ok := ctx.Value(statementSpanKey{}).(trace.Span); ok {
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		tracing.End(span, err)
	}
}

// operation is the statement's first keyword (SELECT, INSERT, WITH, ...),
// the low-cardinality part of a span name.
func operation(sql string) string {
	sql = strings.TrimSpace(sql)
	for strings.HasPrefix(sql, "--") { // a leading comment line
		_, rest, _ := strings.Cut(sql, "\n")
		sql = strings.TrimSpace(rest)
	}
	if i := strings.IndexAny(sql, " \t\n("); i > 0 {
		sql = sql[:i]
	}
	return strings.ToUpper(commonops.Truncate(sql, 16))
}
