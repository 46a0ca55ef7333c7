package operations_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
)

// add moves c forward by d.
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// withClock gives svc a clock of its own, starting at now.
func withClock(svc *operations.Service) *clock {
	c := &clock{now: now}
	svc.Now = c.Now
	return c
}

// createAs creates a task of taskType for tenant.
func createAs(svc *operations.Service, tenant, taskType string, in commonops.CreateInput) (*commonops.Task, error) {
	in.TaskType, in.EntityType = taskType, "product"
	c, _, err := svc.Create(context.Background(), operations.CreateRequest{TenantID: tenant, Requester: "alice", Input: in})
	if err != nil {
		return nil, err
	}
	return c.Task, nil
}

// wantQuota fails unless err is code with a message holding each of parts
// and, for ETOOMANY, a Retry-After of retryAfter.
func wantQuota(t *testing.T, err error, code string, retryAfter time.Duration, parts ...string) {
	t.Helper()
	var e *commonops.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got error %v, want code %q", err, code)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("message %q: want it to hold %q", e.Message, p)
		}
	}
	if e.RetryAfter != retryAfter {
		t.Errorf("RetryAfter: got %s, want %s", e.RetryAfter, retryAfter)
	}
}

// count returns how many tasks tenant has.
func count(t *testing.T, svc *operations.Service, tenant string) int {
	t.Helper()
	_, total, err := svc.List(context.Background(), commonops.ListFilter{TenantID: tenant, Page: 1, PageSize: 100})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return total
}

func TestQuotaCreatesPerMinute(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		clk := withClock(svc)
		svc.Quotas = operations.Quotas{CreatesPerMinute: 5}
		// A second replica on the same store: the limit is the tenant's,
		// not each replica's.
		other := &operations.Service{Store: svc.Store, Objects: svc.Objects, Now: clk.Now, Quotas: svc.Quotas}
		for i := range 5 {
			replica := svc
			if i%2 == 1 {
				replica = other
			}
			if _, err := createAs(replica, "burst", "report", commonops.CreateInput{}); err != nil {
				t.Fatalf("create %d of 5: %v", i+1, err)
			}
			clk.add(10 * time.Millisecond)
		}
		for _, replica := range []*operations.Service{svc, other} {
			_, err := createAs(replica, "burst", "report", commonops.CreateInput{})
			wantQuota(t, err, commonops.ETOOMANY, 60*time.Second, `tenant "burst" created 5 tasks in the last minute`, "the limit is 5 a minute", "retry in 1m0s")
		}
		if got := count(t, svc, "burst"); got != 5 {
			t.Fatalf("tasks after the refusals: got %d, want 5", got)
		}
		if _, err := createAs(svc, "calm", "report", commonops.CreateInput{}); err != nil {
			t.Fatalf("create of another tenant: got %v, want success", err)
		}
		clk.add(time.Minute)
		if _, err := createAs(svc, "burst", "report", commonops.CreateInput{}); err != nil {
			t.Fatalf("create a minute later: got %v, want success", err)
		}
	})
}

// TestQuotaHeavyBurst is the attack of the hardening issue: one tenant
// fires exports; past the quota they are refused, while another tenant, and
// the same tenant's light tasks, go on.
func TestQuotaHeavyBurst(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		svc.Quotas = operations.Quotas{ConcurrentHeavy: 3, HeavyTypes: []string{"import", "export"}}
		var made []*commonops.Task
		refused := 0
		for range 20 {
			tk, err := createAs(svc, "attacker", "export", commonops.CreateInput{})
			if err != nil {
				wantQuota(t, err, commonops.ETOOMANY, 30*time.Second, `tenant "attacker" has 3 unfinished import/export tasks`, "the limit is 3")
				refused++
				continue
			}
			made = append(made, tk)
		}
		if len(made) != 3 || refused != 17 {
			t.Fatalf("burst of 20 exports: got %d created, %d refused; want 3, 17", len(made), refused)
		}
		if got := count(t, svc, "attacker"); got != 3 {
			t.Fatalf("tasks of the attacker: got %d, want 3", got)
		}
		_, err := createAs(svc, "attacker", "import", commonops.CreateInput{})
		wantQuota(t, err, commonops.ETOOMANY, 30*time.Second, "has 3 unfinished")
		if _, err := createAs(svc, "attacker", "report", commonops.CreateInput{}); err != nil {
			t.Fatalf("a light task of the same tenant: got %v, want success", err)
		}
		for i := range 3 {
			if _, err := createAs(svc, "neighbour", "export", commonops.CreateInput{}); err != nil {
				t.Fatalf("export %d of another tenant: got %v, want success", i+1, err)
			}
		}
		if _, err := svc.Cancel(context.Background(), "attacker", made[0].ID); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if _, err := createAs(svc, "attacker", "export", commonops.CreateInput{}); err != nil {
			t.Fatalf("export once one ended: got %v, want success", err)
		}
	})
}

func TestQuotaStoredBytes(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		clk := withClock(svc)
		svc.Quotas = operations.Quotas{StoredBytes: 100}
		in, err := createAs(svc, "full", "import", commonops.CreateInput{FileName: ptr("in.csv")})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		put(t, svc, objectstore.InputKey(in.ID, "in.csv"), 60)
		if _, err := svc.ConfirmUpload(ctx, "full", in.ID); err != nil {
			t.Fatalf("ConfirmUpload: %v", err)
		}
		out, err := createAs(svc, "full", "export", commonops.CreateInput{})
		if err != nil {
			t.Fatalf("create at 60 of 100 bytes: got %v, want success", err)
		}
		if _, err := svc.Claim(ctx, "full", out.ID, "w", 0); err != nil {
			t.Fatalf("Claim: %v", err)
		}
		put(t, svc, objectstore.OutputKey(out.ID, "out.csv"), 30)
		put(t, svc, objectstore.ErrorsKey(out.ID), 15)
		if _, err := svc.Progress(ctx, "full", out.ID, commonops.Progress{Attempt: ptr(1), Status: ptr(commonops.StatusCompleted), OutputFileName: ptr("out.csv")}); err != nil {
			t.Fatalf("complete: %v", err)
		}
		if got, err := svc.Get(ctx, "full", out.ID); err != nil || got.StoredBytes != 45 {
			t.Fatalf("stored bytes of the completed task: got %v, %v; want 45 (output 30 + errors 15)", got, err)
		}
		clk.add(operations.QuotaCacheTTL)
		_, err = createAs(svc, "full", "report", commonops.CreateInput{})
		wantQuota(t, err, commonops.ESTORAGEFULL, 0, `tenant "full"'s tasks hold 105 bytes`, "the limit is 100", "delete finished tasks")
		if got := count(t, svc, "full"); got != 2 {
			t.Fatalf("tasks after the refusal: got %d, want 2", got)
		}
		if _, err := createAs(svc, "empty", "report", commonops.CreateInput{}); err != nil {
			t.Fatalf("create of another tenant: got %v, want success", err)
		}
		if err := svc.Delete(ctx, "full", out.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		clk.add(operations.QuotaCacheTTL)
		if _, err := createAs(svc, "full", "report", commonops.CreateInput{}); err != nil {
			t.Fatalf("create after a delete freed 45 bytes: got %v, want success", err)
		}
	})
}

func TestQuotasOffByDefault(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		for i := range 30 {
			if _, err := createAs(svc, "free", "export", commonops.CreateInput{}); err != nil {
				t.Fatalf("create %d without quotas: %v", i+1, err)
			}
		}
	})
}

func TestParseHeavyTypes(t *testing.T) {
	got := operations.ParseHeavyTypes(" import, export,,import ")
	if strings.Join(got, ",") != "import,export" {
		t.Fatalf("ParseHeavyTypes: got %q, want [import export]", got)
	}
}
