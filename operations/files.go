package operations

import (
	"context"
	"fmt"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/objectstore"
)

// This file holds what keeps a task's files as they were confirmed
// (docs/design.md §4): which upload URL may still write, the ETag a task
// records of its input and output, and the check of that ETag on download.

// AllowPut reports whether key may still be written through the upload URL
// the service signed for it; the local store asks before it takes a PUT and
// again before it keeps the file. An input key may be written while its task
// awaits the upload, an output key of attempt n while the task is processing
// on attempt n. Otherwise ECONFLICT saying why; EFORBIDDEN for a key no
// upload URL is signed for; ENOTFOUND when the task is gone.
func (s *Service) AllowPut(ctx context.Context, key string) error {
	k, ok := objectstore.ParseKey(key)
	if !ok || k.Kind == objectstore.KindErrors || k.Kind == objectstore.KindOutput && k.Attempt == 0 {
		return commonops.Errorf(commonops.EFORBIDDEN, "%s takes no uploads: ask for a new upload URL", key)
	}
	// An upload URL names no tenant: UpdateTask reads across tenants, and
	// a check that returns no change writes nothing.
	_, err := s.Store.UpdateTask(ctx, "", k.TaskID, func(t *commonops.Task) (commonops.Change, error) {
		if k.Kind == objectstore.KindInput {
			return commonops.Change{}, t.AcceptsInput(k.Name)
		}
		return commonops.Change{}, t.AcceptsOutput(k.Attempt)
	})
	return err
}

// findOutput returns the output file name of t's attempt: the one its
// upload URL wrote (AttemptOutputKey) or else the one the built-in worker
// wrote (OutputKey). ENOTFOUND when neither is stored.
func (s *Service) findOutput(ctx context.Context, t *commonops.Task, name string) (objectstore.Info, error) {
	info, err := s.Objects.Stat(ctx, objectstore.AttemptOutputKey(t.ID, t.Attempt, name))
	if commonops.ErrorCode(err) != commonops.ENOTFOUND {
		return info, err
	}
	return s.Objects.Stat(ctx, objectstore.OutputKey(t.ID, name))
}

// outputOnCompletion returns the output file a progress report p that
// completes t leaves it with, for the task to record (Task.ConfirmOutput);
// nil when p does not complete t or there is no output file.
func (s *Service) outputOnCompletion(ctx context.Context, t *commonops.Task, p commonops.Progress) (*objectstore.Info, error) {
	if s.Objects == nil || p.Status == nil || *p.Status != commonops.StatusCompleted {
		return nil, nil
	}
	name := t.OutputFileName
	if p.OutputFileName != nil {
		n, err := commonops.SanitizeFileName(*p.OutputFileName)
		if err != nil {
			return nil, nil // the transition refuses the name
		}
		name = &n
	}
	if name == nil {
		return nil, nil
	}
	info, err := s.findOutput(ctx, t, *name)
	switch {
	case commonops.ErrorCode(err) == commonops.ENOTFOUND:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("find output of task %s: %w", t.ID, err)
	}
	return &info, nil
}

// completionFiles are the files a report that completes a task leaves it
// with: its output (nil when none) and the size of its errors file (0 when
// none), for the task to record.
type completionFiles struct {
	output     *objectstore.Info
	errorsSize int64
}

// filesOnCompletion returns the files a progress report p that completes t
// leaves it with (see outputOnCompletion); none when p does not complete t.
func (s *Service) filesOnCompletion(ctx context.Context, t *commonops.Task, p commonops.Progress) (completionFiles, error) {
	var f completionFiles
	if s.Objects == nil || p.Status == nil || *p.Status != commonops.StatusCompleted {
		return f, nil
	}
	out, err := s.outputOnCompletion(ctx, t, p)
	if err != nil {
		return f, err
	}
	f.output = out
	info, err := s.Objects.Stat(ctx, objectstore.ErrorsKey(t.ID))
	switch {
	case commonops.ErrorCode(err) == commonops.ENOTFOUND:
	case err != nil:
		return f, fmt.Errorf("find errors file of task %s: %w", t.ID, err)
	default:
		f.errorsSize = info.Size
	}
	return f, nil
}

// confirmOutput records out, when set, as the output of a task that p's
// transition completed with that file.
func confirmOutput(t *commonops.Task, out *objectstore.Info) {
	if out == nil || t.OutputFileName == nil {
		return
	}
	if k, ok := objectstore.ParseKey(out.Key); ok && k.Name == *t.OutputFileName {
		t.ConfirmOutput(out.Key, out.ETag, out.Size)
	}
}

// statConfirmed stats the file which of t at key and, when t recorded an
// ETag for it, refuses (ECONFLICT) a file that has another one: it was
// overwritten after it was confirmed, through an upload URL that could not
// be revoked, and is not what the task ran on or produced.
func (s *Service) statConfirmed(ctx context.Context, t *commonops.Task, which, key string, etag *string) error {
	info, err := s.Objects.Stat(ctx, key)
	if err != nil {
		if commonops.ErrorCode(err) == commonops.ENOTFOUND {
			return commonops.Errorf(commonops.ENOTFOUND, "no %s: the file of task %s is not in storage", which, t.ID)
		}
		return fmt.Errorf("stat %s: %w", key, err)
	}
	if etag != nil && info.ETag != *etag {
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("the %s file of task %s changed after it was confirmed: it is not served", which, t.ID), Task: t}
	}
	return nil
}

// cmpKey returns key, or otherwise when key is empty.
func cmpKey(key, otherwise string) string {
	if key != "" {
		return key
	}
	return otherwise
}
