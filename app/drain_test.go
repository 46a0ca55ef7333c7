package app_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/commonops/commonops/app"
)

// TestDrainDelayTurnsUnreadyFirst stops an app with a DrainDelay: for that
// long it still serves requests while GET /readyz answers 503, so a load
// balancer takes it out of rotation before it stops accepting connections.
func TestDrainDelayTurnsUnreadyFirst(t *testing.T) {
	t.Parallel()
	for _, roles := range []string{app.RolesDefault, app.RoleWorker} {
		t.Run(roles, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", Roles: roles, DataDir: dir,
				DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"), DrainDelay: 3 * time.Second, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, sigterm := context.WithCancel(ctx)
			ran := make(chan error, 1)
			go func() { ran <- a.Run(runCtx) }()
			base := "http://" + a.Addr()
			status := func(path string) int {
				resp, err := http.Get(base + path)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			waitFor(t, func() bool { return status("/readyz") == http.StatusOK }, "readyz 200 before the stop")

			sigterm()
			waitFor(t, func() bool { return status("/readyz") == http.StatusServiceUnavailable }, "readyz 503 while draining")
			if got := status("/healthz"); got != http.StatusOK {
				t.Errorf("healthz while draining: got %d, want 200 (the process still serves)", got)
			}
			select {
			case err := <-ran:
				t.Fatalf("Run returned (%v) during the drain delay, want it still serving", err)
			default:
			}
			if err := <-ran; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if _, err := http.Get(base + "/healthz"); err == nil {
				t.Error("GET /healthz after Run returned: got an answer, want the listener closed")
			}
		})
	}
}

// waitFor polls cond every 20ms for up to 10s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
