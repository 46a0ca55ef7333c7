package httpapi

import (
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// scheduleID reads the {scheduleId} path value: a UUID, or 400.
func scheduleID(r *http.Request) (string, error) {
	raw := r.PathValue("scheduleId")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return "", &commonops.Error{
			Code:    commonops.EMALFORMED,
			Message: fmt.Sprintf("schedule id %q is not a UUID", commonops.Shorten(raw, 64)),
			Fields:  []commonops.FieldError{{Field: "scheduleId", Message: "must be a UUID like 0b7e9d5c-2f0a-4c55-9a3e-6f1d2c3b4a59"}},
		}
	}
	return id.String(), nil
}

// readSchedule decodes a schedule body, refusing a template of a task type
// the caller's key may not create.
func (s *server) readSchedule(w http.ResponseWriter, r *http.Request) (operations.ScheduleInput, error) {
	var in operations.ScheduleInput
	if err := s.decode(w, r, &in); err != nil {
		return in, err
	}
	return in, operations.MayCreate(r.Context(), in.Template.TaskType)
}

// handleCreateSchedule serves POST /schedules: 201 with the schedule and
// its next five runs; 422 for a bad cron expression, time zone, policy or
// a template a create would refuse.
func handleCreateSchedule(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		in, err := s.readSchedule(w, r)
		if err != nil {
			return err
		}
		ri := info(r)
		v, err := s.svc.CreateSchedule(r.Context(), ri.tenant, ri.user, in)
		if err != nil {
			return err
		}
		w.Header().Set("Location", prefix+"/schedules/"+v.ID)
		s.writeJSON(w, r, http.StatusCreated, v)
		return nil
	})
}

// scheduleList is the answer of GET /schedules; nextCursor, null on the
// last page, is the after of the next one.
type scheduleList struct {
	Schedules  []*operations.ScheduleView `json:"schedules"`
	NextCursor *string                    `json:"nextCursor"`
}

// handleListSchedules serves GET /schedules?after=&limit=.
func handleListSchedules(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		q := newQuery(r)
		after := q.str("after", 36)
		limit := q.int("limit", 50, 1, operations.ScheduleListMax)
		if err := q.err(); err != nil {
			return err
		}
		list, err := s.svc.ListSchedules(r.Context(), info(r).tenant, after, limit)
		if err != nil {
			return err
		}
		out := scheduleList{Schedules: list}
		if len(list) == limit {
			out.NextCursor = &list[len(list)-1].ID
		}
		s.writeJSON(w, r, http.StatusOK, out)
		return nil
	})
}

// handleSchedule serves the calls on one schedule: GET (with its next
// five runs), PUT, pause and resume, each answering the schedule.
func handleSchedule(s *server, call func(s *server, w http.ResponseWriter, r *http.Request, tenant, id string) (*operations.ScheduleView, error)) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := scheduleID(r)
		if err != nil {
			return err
		}
		v, err := call(s, w, r, info(r).tenant, id)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, v)
		return nil
	})
}

func getSchedule(s *server, _ http.ResponseWriter, r *http.Request, tenant, id string) (*operations.ScheduleView, error) {
	return s.svc.GetSchedule(r.Context(), tenant, id)
}

func putSchedule(s *server, w http.ResponseWriter, r *http.Request, tenant, id string) (*operations.ScheduleView, error) {
	in, err := s.readSchedule(w, r)
	if err != nil {
		return nil, err
	}
	return s.svc.UpdateSchedule(r.Context(), tenant, id, in)
}

func pauseSchedule(s *server, _ http.ResponseWriter, r *http.Request, tenant, id string) (*operations.ScheduleView, error) {
	return s.svc.PauseSchedule(r.Context(), tenant, id)
}

func resumeSchedule(s *server, _ http.ResponseWriter, r *http.Request, tenant, id string) (*operations.ScheduleView, error) {
	return s.svc.ResumeSchedule(r.Context(), tenant, id)
}

// handleDeleteSchedule serves DELETE /schedules/{scheduleId}: 204; the
// tasks it created stay.
func handleDeleteSchedule(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := scheduleID(r)
		if err != nil {
			return err
		}
		if err := s.svc.DeleteSchedule(r.Context(), info(r).tenant, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
