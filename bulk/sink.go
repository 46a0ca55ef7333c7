package bulk

import (
	"context"
	"errors"
	"fmt"

	"github.com/commonops/commonops"
)

// Sink stores validated records, one batch at a time. Write must be an
// idempotent upsert on the entity's key: a retried attempt sends again the
// batch that was in flight when the previous attempt stopped.
type Sink interface {
	// Write stores batch. It returns the records the sink refused one by
	// one (the others are stored), or an error when the batch as a whole
	// was not stored.
	Write(ctx context.Context, batch []Record) ([]RecordError, error)
	// Close releases the sink's connections.
	Close() error
}

// RecordError is one record of a batch that the sink refused.
type RecordError struct {
	// Index is the record's position in the batch.
	Index   int    `json:"index"`
	Message string `json:"message"`
}

// OpenSink opens the sink an entity is configured with.
func OpenSink(ctx context.Context, e *Entity) (Sink, error) {
	if e.Sink == nil {
		return nil, commonops.Errorf(commonops.EINVALID, "entity %s has no import sink", e.Name)
	}
	switch e.Sink.Type {
	case "http":
		return newHTTPSink(e.Sink), nil
	case "sql":
		return openSQLSink(ctx, e)
	}
	return nil, fmt.Errorf("entity %s: unknown sink type %q", e.Name, e.Sink.Type)
}

// unavailable marks err as a dependency being down: the attempt fails and
// the task is retried (resuming from its checkpoint).
func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: what + " is unavailable", Err: err}
}

// Outcome is what storing one record did to the sink's table.
type Outcome uint8

// The outcomes a results file names (with failed and skipped, which the
// importer decides itself).
const (
	OutcomeNone Outcome = iota
	OutcomeCreated
	OutcomeUpdated
	OutcomeUnchanged
)

func (o Outcome) String() string {
	switch o {
	case OutcomeCreated:
		return "created"
	case OutcomeUpdated:
		return "updated"
	case OutcomeUnchanged:
		return "unchanged"
	}
	return ""
}

// OutcomeSink is a Sink that tells, of each record it stores, whether it
// created a row, changed one or found it as it was: the import's results
// file needs it (both sql sinks are OutcomeSinks).
type OutcomeSink interface {
	Sink
	// WriteOutcomes is Write that also sets outcomes[i] (len(batch) long)
	// for each record i it stored. A record whose key a later record of
	// the batch repeats may be left at OutcomeNone: the later one won.
	WriteOutcomes(ctx context.Context, batch []Record, outcomes []Outcome) ([]RecordError, error)
}
