// Package tracing starts the OpenTelemetry spans of commonops and keeps them
// joined to the W3C traceparent the root package carries in a context
// (commonops.WithTraceParent), which the store writes on outbox rows and the
// publishers hand on to pub/sub. Tracing is off until Enable installs a
// TracerProvider: Start then costs one atomic load and changes nothing.
package tracing

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/commonops/commonops"
)

// Name is the instrumentation scope of every commonops span.
const Name = "github.com/commonops/commonops"

// on holds the tracer while tracing is enabled; nil when off.
var on atomic.Pointer[trace.Tracer]

// Enable sends every span from now on to tp, which also becomes the global
// TracerProvider (so libraries that trace by themselves join the same
// traces), with the W3C Trace Context propagator. A nil tp turns tracing
// off again.
func Enable(tp trace.TracerProvider) {
	if tp == nil {
		on.Store(nil)
		return
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t := tp.Tracer(Name)
	on.Store(&t)
}

// Enabled reports whether spans are recorded (Enable was called).
func Enabled() bool { return on.Load() != nil }

// noopSpan is what Start returns while tracing is off.
var noopSpan = noop.Span{}

// Start starts the span name, a child of the span in ctx or, when ctx has
// none, of ctx's traceparent (an event's or a stored row's), and returns a
// context carrying the span and its traceparent, so the outbox rows written
// under it continue the trace. While tracing is off it returns ctx and a
// span that records nothing.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	t := on.Load()
	if t == nil {
		return ctx, noopSpan
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = Remote(ctx, commonops.TraceParent(ctx))
	}
	ctx, span := (*t).Start(ctx, name, opts...)
	if tp := TraceParent(span.SpanContext()); tp != "" {
		ctx = commonops.WithTraceParent(ctx, tp)
	}
	return ctx, span
}

// Remote returns ctx with the remote parent tp (a W3C traceparent), or ctx
// unchanged when tp is not a valid one.
func Remote(ctx context.Context, tp string) context.Context {
	if !commonops.ValidTraceParent(tp) {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// TraceParent is the W3C traceparent of sc, or "" when sc is not valid.
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
