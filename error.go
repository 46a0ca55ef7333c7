package commonops

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each maps to exactly one HTTP status in httpapi; callers test
// for them with ErrorCode, never by matching strings.
const (
	EINVALID      = "invalid"      // the input breaks a rule (422; 400 for malformed syntax).
	EMALFORMED    = "malformed"    // the input cannot be parsed at all (400).
	ENOTFOUND     = "not_found"    // no such task for this tenant (404).
	ECONFLICT     = "conflict"     // wrong state, stale attempt or lost optimistic race (409).
	ETOOLARGE     = "too_large"    // a body, file or field is over its limit (413).
	EUNAUTHORIZED = "unauthorized" // no credentials, or credentials that do not verify (401).
	EFORBIDDEN    = "forbidden"    // the caller may not do this, or a signed URL is tampered with or expired (403).
	ETOOMANY      = "too_many"     // a rate limit or quota on counts is reached; Error.RetryAfter says when to try again (429).
	ESTORAGEFULL  = "storage_full" // a quota on stored bytes is reached (507).
	EUNAVAILABLE  = "unavailable"  // a dependency is down; try again later (503).
	EINTERNAL     = "internal"     // a bug or an unexpected failure (500).
)

// Error is the one domain error type. Code drives the HTTP status, Message is
// safe to show to a client, and Fields lists per-field validation problems.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	// Task is the task's current state where it helps the caller (a 409
	// answers the state the task is really in).
	Task *Task
	// Err is the underlying cause, kept for logs and errors.Is; never shown.
	Err error
	// RetryAfter, with ETOOMANY or EUNAVAILABLE, is when the caller may try
	// again; zero when unknown.
	RetryAfter time.Duration
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	msg := e.Message
	if len(e.Fields) > 0 {
		msg = fmt.Sprintf("%s (%s: %s)", msg, e.Fields[0].Field, e.Fields[0].Message)
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err: the Message of its
// *Error, or a generic text for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Invalid returns an EINVALID error listing the given field problems.
func Invalid(fields ...FieldError) *Error {
	msg := "the request is invalid"
	if len(fields) == 1 {
		msg = fields[0].Field + ": " + fields[0].Message
	}
	return &Error{Code: EINVALID, Message: msg, Fields: fields}
}
