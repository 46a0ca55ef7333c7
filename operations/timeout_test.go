package operations_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// TestTimeouts checks timeoutSeconds on both stores: the default of the
// task type, a worker refused past the deadline, and the attempt failed
// with a timeout error then retried per maxRetries.
func TestTimeouts(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		var clk atomic.Int64
		clk.Store(t0.UnixNano())
		svc = onClock(svc, &clk)
		svc.TaskTimeouts = map[string]time.Duration{"import": 30 * time.Second}
		byDefault := create(t, svc, commonops.CreateInput{})
		if byDefault.TimeoutSeconds == nil || *byDefault.TimeoutSeconds != 30 {
			t.Fatalf("import without timeoutSeconds: got %v, want the type's 30", byDefault.TimeoutSeconds)
		}
		own := create(t, svc, commonops.CreateInput{TimeoutSeconds: ptr(10), MaxRetries: ptr(1)})
		if *own.TimeoutSeconds != 10 {
			t.Fatalf("import with timeoutSeconds 10: got %d", *own.TimeoutSeconds)
		}
		if _, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, Input: commonops.CreateInput{TaskType: "import", EntityType: "x", TimeoutSeconds: ptr(0)}}); commonops.ErrorCode(err) != commonops.EINVALID {
			t.Fatalf("timeoutSeconds 0: got %v, want EINVALID", err)
		}
		if _, err := svc.Claim(ctx, tenant, own.ID, "w1", 0); err != nil {
			t.Fatalf("Claim: %v", err)
		}
		ref := operations.TaskRef{TenantID: tenant, ID: own.ID}
		clk.Store(t0.Add(9 * time.Second).UnixNano())
		if _, err := svc.Heartbeat(ctx, tenant, own.ID, 1); err != nil {
			t.Fatalf("Heartbeat before the deadline: %v", err)
		}
		if _, err := svc.TimeOut(ctx, ref, t0.Add(9*time.Second)); commonops.ErrorCode(err) != commonops.ECONFLICT {
			t.Fatalf("TimeOut before the deadline: got %v, want ECONFLICT", err)
		}
		clk.Store(t0.Add(10 * time.Second).UnixNano())
		_, err := svc.Heartbeat(ctx, tenant, own.ID, 1)
		if commonops.ErrorCode(err) != commonops.ECONFLICT || !strings.Contains(err.Error(), commonops.TimeoutPrefix) {
			t.Fatalf("Heartbeat at the deadline: got %v, want ECONFLICT saying timeout", err)
		}
		if _, err := svc.Progress(ctx, tenant, own.ID, commonops.Progress{Attempt: ptr(1), Progress: ptr(0.5)}); commonops.ErrorCode(err) != commonops.ECONFLICT {
			t.Fatalf("Progress at the deadline: got %v, want ECONFLICT", err)
		}
		got, err := svc.TimeOut(ctx, ref, t0.Add(10*time.Second))
		if err != nil {
			t.Fatalf("TimeOut: %v", err)
		}
		if got.Status != commonops.StatusPending || got.RetryCount != 1 || got.ErrorMessage == nil || !strings.HasPrefix(*got.ErrorMessage, commonops.TimeoutPrefix) {
			t.Fatalf("timed out with a retry left: got status %s, retryCount %d, error %v, want pending, 1, timeout: ...", got.Status, got.RetryCount, got.ErrorMessage)
		}
		// The retry times out too: no retries left, it fails.
		clk.Store(t0.Add(time.Hour).UnixNano())
		if _, err := svc.Claim(ctx, tenant, own.ID, "w2", 0); err != nil {
			t.Fatalf("Claim of the retry: %v", err)
		}
		got, err = svc.TimeOut(ctx, ref, t0.Add(time.Hour+10*time.Second))
		if err != nil || got.Status != commonops.StatusFailed || !strings.HasPrefix(*got.ErrorMessage, commonops.TimeoutPrefix) {
			t.Fatalf("timed out without retries: got %+v, %v, want failed with a timeout error", got, err)
		}
	})
}
