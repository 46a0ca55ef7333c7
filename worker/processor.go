package worker

import (
	"context"
	"errors"
	"io"

	"github.com/commonops/commonops"
)

// Processor does the work of one task type. Process returns nil when the
// task is done, an error to fail the attempt (retried while retries remain),
// or an error wrapped by Permanent to fail the task for good. ctx is
// cancelled when the task is cancelled or the lease is lost: a processor must
// return promptly then.
type Processor interface {
	Process(ctx context.Context, job Job) error
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, job Job) error

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, job Job) error { return f(ctx, job) }

// Job is what a processor sees of its task: the task as claimed, its files
// and a reporter. Reports are coalesced and throttled; the final state is
// never lost.
type Job interface {
	// Task is the task as claimed (status processing, with its attempt and
	// the checkpoint of an earlier attempt, if any).
	Task() *commonops.Task
	// Input opens the task's input file; ENOTFOUND when it has none.
	Input(ctx context.Context) (io.ReadCloser, error)
	// Output streams the task's output file; Close commits it and records
	// outputFileName.
	Output(ctx context.Context, fileName, contentType string) (io.WriteCloser, error)
	// Errors streams the task's errors.csv report; Close commits it.
	Errors(ctx context.Context) (io.WriteCloser, error)
	// File streams a report file of the task (objectstore.ReportKey): name
	// is a file name, or dir/name for a scratch part; Close commits it.
	File(ctx context.Context, name, contentType string) (io.WriteCloser, error)
	// OpenFile reads back a report file written by File.
	OpenFile(ctx context.Context, name string) (io.ReadCloser, error)
	// DeleteFiles deletes the report files under dir.
	DeleteFiles(ctx context.Context, dir string) error
	// Report records progress; it is sent coalesced, a few times a second at
	// most.
	Report(u Update)
	// Log adds a line to the task's log (buffered, sent with reports).
	Log(level commonops.LogLevel, message string, details any)
	// Checkpoint durably saves a resume point with the counts that go with it,
	// before returning: a later attempt sees it in Task().Checkpoint.
	Checkpoint(ctx context.Context, checkpoint any, u Update) error
}

// Update is a progress report. Nil fields are left as they are.
type Update struct {
	Progress   *float64
	TotalItems *int64
	// TotalItemsEstimated marks TotalItems as an estimate; leave it nil
	// (or false) once the total is exact.
	TotalItemsEstimated *bool
	// EtaSeconds is how many seconds the processor expects to take still.
	EtaSeconds     *int64
	ProcessedItems *int64
	SuccessItems   *int64
	FailedItems    *int64
	Message        *string
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the task fails at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
