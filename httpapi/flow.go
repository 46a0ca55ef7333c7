package httpapi

import (
	"net/http"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/operations"
)

// flowList is the answer of GET /flow-controls.
type flowList struct {
	FlowControls []commonops.FlowControl `json:"flowControls"`
}

// flowLimitBody is the JSON of PUT /flow-controls/{taskType}: a null or
// absent limit removes it.
type flowLimitBody struct {
	Limit *int `json:"limit"`
}

// flowScope reads ?scope= (tenant, the default, or all) and the path's
// task type: all is for platform admins only.
func flowScope(r *http.Request) (operations.FlowScope, error) {
	fs := operations.FlowScope{TenantID: info(r).tenant, TaskType: r.PathValue("taskType")}
	switch r.URL.Query().Get("scope") {
	case "", "tenant":
	case "all":
		if p := auth.FromContext(r.Context()); p == nil || !p.PlatformAdmin {
			return fs, commonops.Errorf(commonops.EFORBIDDEN, "only a platform admin reads or changes the flow controls of every tenant (scope=all)")
		}
		fs.All = true
	default:
		return fs, commonops.Invalid(commonops.FieldError{Field: "scope", Message: "must be tenant or all"})
	}
	return fs, nil
}

// handleListFlow serves GET /flow-controls: the controls that hold back
// the tenant's tasks, or every tenant's with ?scope=all.
func handleListFlow(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		fs, err := flowScope(r)
		if err != nil {
			return err
		}
		fcs, err := s.svc.FlowControls(r.Context(), fs.TenantID, fs.All)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, flowList{FlowControls: fcs})
		return nil
	})
}

// handleSetFlowLimit serves PUT /flow-controls/{taskType}: 200 with the
// control.
func handleSetFlowLimit(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		fs, err := flowScope(r)
		if err != nil {
			return err
		}
		var in flowLimitBody
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
		fc, err := s.svc.SetFlowLimit(r.Context(), fs, in.Limit)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, fc)
		return nil
	})
}

// handlePauseFlow serves POST /flow-controls/{taskType}/pause (paused
// true) and /resume: 200 with the control.
func handlePauseFlow(s *server, paused bool) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		fs, err := flowScope(r)
		if err != nil {
			return err
		}
		fc, err := s.svc.PauseFlow(r.Context(), fs, paused)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, fc)
		return nil
	})
}
