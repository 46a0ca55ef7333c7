package operations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/commonops/commonops"
)

// Scope narrows what a request may reach below its tenant. The API sets it
// from the caller's principal and the route's policy (see httpapi's
// routes.go); the zero Scope, which the built-in worker, maintenance and
// the none auth mode run with, reaches every task of the tenant.
type Scope struct {
	// OwnedBy, when set, limits the request to the tasks this requester
	// created (a submitter): another's task is ENOTFOUND, so that its
	// existence does not leak.
	OwnedBy string
	// TaskTypes, when not empty, limits the worker calls to tasks of these
	// types: claiming or reporting on another type is EFORBIDDEN.
	TaskTypes []string
}

type scopeKey struct{}

// WithScope returns a copy of ctx carrying sc.
func WithScope(ctx context.Context, sc Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, sc)
}

func scopeOf(ctx context.Context) Scope {
	sc, _ := ctx.Value(scopeKey{}).(Scope)
	return sc
}

// owns reports ENOTFOUND when t is not one the scope may reach as its
// requester.
func (sc Scope) owns(t *commonops.Task) error {
	if sc.OwnedBy != "" && t.RequestedBy != sc.OwnedBy {
		return commonops.Errorf(commonops.ENOTFOUND, "task %s not found", t.ID)
	}
	return nil
}

// works reports EFORBIDDEN when t is of a task type outside the scope's.
func (sc Scope) works(t *commonops.Task) error {
	if len(sc.TaskTypes) > 0 && !slices.Contains(sc.TaskTypes, t.TaskType) {
		return sc.forbiddenType(t.TaskType)
	}
	return nil
}

func (sc Scope) forbiddenType(taskType string) error {
	return commonops.Errorf(commonops.EFORBIDDEN, "this credential may work only on task types %s, not %q",
		strings.Join(sc.TaskTypes, ", "), taskType)
}

// kinds are the claim kinds of the scope's task types (nil: any).
func (sc Scope) kinds() []commonops.Kind {
	var ks []commonops.Kind
	for _, tt := range sc.TaskTypes {
		ks = append(ks, commonops.Kind{TaskType: tt, EntityType: "*"})
	}
	return ks
}

// check is owns then works: the task-level part of the scope.
func (sc Scope) check(t *commonops.Task) error {
	if err := sc.owns(t); err != nil {
		return err
	}
	return sc.works(t)
}

// scoped wraps a transition so that it first checks ctx's scope against
// the stored task: no extra round trip.
func scoped(ctx context.Context, fn func(*commonops.Task) (commonops.Change, error)) func(*commonops.Task) (commonops.Change, error) {
	sc := scopeOf(ctx)
	if sc.OwnedBy == "" && len(sc.TaskTypes) == 0 {
		return fn
	}
	return func(t *commonops.Task) (commonops.Change, error) {
		if err := sc.check(t); err != nil {
			return commonops.Change{}, err
		}
		return fn(t)
	}
}

// MayCreate reports EFORBIDDEN when ctx's scope does not admit creating a
// task of taskType.
func MayCreate(ctx context.Context, taskType string) error {
	sc := scopeOf(ctx)
	if len(sc.TaskTypes) > 0 && !slices.Contains(sc.TaskTypes, taskType) {
		return sc.forbiddenType(taskType)
	}
	return nil
}

// claimScoped is the error of a claim in ctx's scope: a kind mismatch the
// scope caused is EFORBIDDEN.
func claimScoped(ctx context.Context, t *commonops.Task, err error) (*commonops.Task, error) {
	var e *commonops.Error
	if sc := scopeOf(ctx); len(sc.TaskTypes) > 0 && errors.Is(err, commonops.ErrKindMismatch) && errors.As(err, &e) && e.Task != nil {
		return nil, sc.forbiddenType(e.Task.TaskType)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// getScoped is Store.GetTask checked against ctx's scope.
func (s *Service) getScoped(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	t, err := s.Store.GetTask(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if err := scopeOf(ctx).check(t); err != nil {
		return nil, err
	}
	return t, nil
}

// checkScope loads the task when ctx's scope needs it to tell whether the
// call may go on (calls that do not read the task otherwise).
func (s *Service) checkScope(ctx context.Context, tenant, id string) error {
	if sc := scopeOf(ctx); sc.OwnedBy == "" && len(sc.TaskTypes) == 0 {
		return nil
	}
	if _, err := s.getScoped(ctx, tenant, id); err != nil {
		return fmt.Errorf("check scope: %w", err)
	}
	return nil
}

// narrowList limits f to the scope's own tasks; false when f asks for
// another requester's, which the scope reaches none of.
func (sc Scope) narrowList(f *commonops.ListFilter) bool {
	if sc.OwnedBy == "" {
		return true
	}
	if f.RequestedBy != "" && f.RequestedBy != sc.OwnedBy {
		return false
	}
	f.RequestedBy = sc.OwnedBy
	return true
}
