package commonops

import (
	"context"
	"strings"
)

// traceParentKey is the context key of WithTraceParent.
type traceParentKey struct{}

// WithTraceParent returns a copy of ctx carrying the W3C traceparent tp. The
// store records it on the outbox rows a change made with that context writes
// (CreateTask, UpdateTask, ClaimNext), and DeliverOutbox hands it back in
// OutboxMessage.TraceParent, so the published event continues the trace. The
// caller validates tp; an empty tp records nothing.
func WithTraceParent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceParentKey{}, tp)
}

// ValidTraceParent reports whether tp is a W3C Trace Context traceparent of
// version 00: "00-", 32 lowercase hex digits (the trace id, not all zero),
// "-", 16 lowercase hex digits (the parent id, not all zero), "-", 2
// lowercase hex digits (the flags); 55 characters in all. Entry points
// check a traceparent they receive with it before WithTraceParent.
func ValidTraceParent(tp string) bool {
	if len(tp) != 55 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	traceID, parentID, flags := tp[3:35], tp[36:52], tp[53:]
	return lowerHex(traceID) && lowerHex(parentID) && lowerHex(flags) &&
		strings.Trim(traceID, "0") != "" && strings.Trim(parentID, "0") != ""
}

// lowerHex reports whether s is all lowercase hex digits.
func lowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// TraceParent returns the traceparent WithTraceParent put in ctx, or "".
// The store records it on the outbox rows a change made with ctx writes.
func TraceParent(ctx context.Context) string {
	tp, _ := ctx.Value(traceParentKey{}).(string)
	return tp
}
