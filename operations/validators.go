package operations

import (
	"time"

	"github.com/commonops/commonops"
)

// CreateCheck is a check of one task type's creates beyond the rules of the
// root package: what its processor needs (an entity it knows, an input
// file, params of the right types). It returns the problems of in, field
// by field, or none.
type CreateCheck = func(in commonops.CreateInput) []commonops.FieldError

// checkCreate runs the check registered for in's task type, if any. A task
// type without one (no processor known to this process: a remote worker
// may own it) is not checked.
func (s *Service) checkCreate(in commonops.CreateInput) error {
	check := s.Validators[in.TaskType]
	if check == nil {
		return nil
	}
	if fe := check(in); len(fe) > 0 {
		return commonops.Invalid(fe...)
	}
	return nil
}

// withTimeout gives in the timeout of its task type (s.TaskTimeouts)
// when it names none.
func (s *Service) withTimeout(in commonops.CreateInput) commonops.CreateInput {
	if in.TimeoutSeconds != nil {
		return in
	}
	if d, ok := s.TaskTimeouts[in.TaskType]; ok && d > 0 {
		v := max(int(d/time.Second), 1)
		in.TimeoutSeconds = &v
	}
	return in
}
