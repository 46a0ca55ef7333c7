package httpapi

import (
	"context"
	_ "embed"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/commonops/commonops"
)

// Check outcomes in health answers.
const (
	checkOK      = "ok"
	checkDown    = "down"
	checkSkipped = "skipped" // nothing to check (e.g. the in-process bus)
)

// checkResult is one dependency in a health answer.
type checkResult struct {
	Status     string  `json:"status"`
	Error      string  `json:"error,omitempty"`
	DurationMs float64 `json:"durationMs"`
}

// healthBody is the answer of the health and readiness probes.
type healthBody struct {
	Status string                 `json:"status"` // "ok" or "unavailable"
	Checks map[string]checkResult `json:"checks"`
}

// healthChecks are always reported by the health endpoint, configured or not.
var healthChecks = []string{"database", "storage", "pubsub"}

// runChecks runs checks concurrently, each bounded by s.timeout.
func (s *server) runChecks(r *http.Request, checks map[string]func(context.Context) error, always []string) (healthBody, int) {
	body := healthBody{Status: "ok", Checks: make(map[string]checkResult, len(checks))}
	for _, name := range always {
		body.Checks[name] = checkResult{Status: checkSkipped}
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for name, check := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
			defer cancel()
			start := time.Now()
			err := check(ctx)
			res := checkResult{Status: checkOK, DurationMs: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				res.Status = checkDown
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					res.Error = "no answer within " + s.timeout.String()
				case domainError(err) != nil:
					res.Error = commonops.ErrorMessage(err)
				default:
					res.Error = "check failed (see the service log)"
				}
				s.log.WarnContext(r.Context(), "check failed", "request_id", info(r).id, "check", name, "err", err)
			}
			mu.Lock()
			body.Checks[name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, res := range body.Checks {
		if res.Status == checkDown {
			body.Status = "unavailable"
			return body, http.StatusServiceUnavailable
		}
	}
	return body, http.StatusOK
}

// handleHealth serves GET /api/v1/operations/health: every dependency, 503
// when one is down.
func handleHealth(s *server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, status := s.runChecks(r, s.checks, healthChecks)
		s.writeJSON(w, r, status, body)
	})
}

// handleLiveness serves GET /healthz: 200 while the process serves.
func handleLiveness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
}

// handleReadiness serves GET /readyz: the database and Config.Ready, 503
// when either fails, so a load balancer stops sending traffic.
func handleReadiness(s *server) http.Handler {
	checks := map[string]func(context.Context) error{}
	if db := s.checks["database"]; db != nil {
		checks["database"] = db
	}
	if s.ready != nil {
		checks["ready"] = s.ready
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, status := s.runChecks(r, checks, nil)
		s.writeJSON(w, r, status, body)
	})
}

// handleOptional serves h, or a 404 problem saying msg when h is not
// configured.
func handleOptional(s *server, h http.Handler, msg string) http.Handler {
	if h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, commonops.Errorf(commonops.ENOTFOUND, "%s", msg))
	})
}

//go:embed openapi.json
var openAPI []byte

// handleOpenAPI serves GET /openapi.json, the OpenAPI 3.1 description of
// the routes in routes.go (a test keeps the two in step).
func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
}
