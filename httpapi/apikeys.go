package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/operations"
)

// keyBody is the JSON of POST /apikeys. Tenant and platformAdmin are for
// platform admins only; the tenant defaults to the caller's.
type keyBody struct {
	Name          string      `json:"name"`
	Roles         []auth.Role `json:"roles"`
	TaskTypes     []string    `json:"taskTypes"`
	ExpiresAt     *time.Time  `json:"expiresAt"`
	Tenant        string      `json:"tenant"`
	PlatformAdmin bool        `json:"platformAdmin"`
}

// keyList is the answer of GET /apikeys.
type keyList struct {
	Keys []*auth.APIKey `json:"keys"`
}

// handleCreateKey serves POST /apikeys: 201 with the new key, shown only in
// this answer.
func handleCreateKey(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		var in keyBody
		if err := s.decode(w, r, &in); err != nil {
			return err
		}
		p := auth.FromContext(r.Context())
		tenant := info(r).tenant
		if t := strings.TrimSpace(in.Tenant); t != "" && t != tenant {
			if !p.PlatformAdmin {
				return commonops.Errorf(commonops.EFORBIDDEN, "only a platform admin creates keys of another tenant")
			}
			tenant = t
		}
		if in.PlatformAdmin && !p.PlatformAdmin {
			return commonops.Errorf(commonops.EFORBIDDEN, "only a platform admin creates platform admin keys")
		}
		k, err := s.svc.CreateAPIKey(r.Context(), operations.KeyRequest{
			Tenant: tenant, Name: in.Name, Roles: in.Roles, TaskTypes: in.TaskTypes, ExpiresAt: in.ExpiresAt,
			PlatformAdmin: in.PlatformAdmin, CreatedBy: p.Actor(),
		})
		if err != nil {
			return err
		}
		w.Header().Set("Location", prefix+"/apikeys/"+k.ID)
		s.writeJSON(w, r, http.StatusCreated, k)
		return nil
	})
}

// handleListKeys serves GET /apikeys: the tenant's keys, without secrets.
func handleListKeys(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		keys, err := s.svc.ListAPIKeys(r.Context(), info(r).tenant)
		if err != nil {
			return err
		}
		if keys == nil {
			keys = []*auth.APIKey{}
		}
		s.writeJSON(w, r, http.StatusOK, keyList{Keys: keys})
		return nil
	})
}

// handleRevokeKey serves DELETE /apikeys/{keyId}: 204. The key stops
// working at once on this replica, within the key cache's TTL on others.
func handleRevokeKey(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("keyId")
		if _, err := s.svc.RevokeAPIKey(r.Context(), info(r).tenant, id); err != nil {
			return err
		}
		if s.auth != nil {
			s.auth.Forget(id)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
