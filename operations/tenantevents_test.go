package operations_test

import (
	"context"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

func TestTenantEvents(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		mine := create(t, svc, commonops.CreateInput{TaskType: "export"})
		theirs := create(t, svc, commonops.CreateInput{RequestedBy: ptr("bob")})
		claim(t, svc, theirs.ID)
		for _, c := range []struct {
			name  string
			ctx   context.Context
			f     commonops.EventFilter
			tasks []string // the task of each event, in order
		}{
			{"all", ctx, commonops.EventFilter{TenantID: tenant}, []string{mine.ID, theirs.ID, theirs.ID}},
			{"by type", ctx, commonops.EventFilter{TenantID: tenant, TaskType: "export"}, []string{mine.ID}},
			{"by status", ctx, commonops.EventFilter{TenantID: tenant, Statuses: []commonops.Status{commonops.StatusProcessing}}, []string{theirs.ID}},
			{"a submitter's own", operations.WithScope(ctx, operations.Scope{OwnedBy: "alice"}), commonops.EventFilter{TenantID: tenant}, []string{mine.ID}},
			{"a submitter asking for another's", operations.WithScope(ctx, operations.Scope{OwnedBy: "alice"}), commonops.EventFilter{TenantID: tenant, RequestedBy: "bob"}, []string{}},
			{"another tenant", ctx, commonops.EventFilter{TenantID: "another-tenant"}, []string{}},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := svc.TenantEvents(c.ctx, c.f)
				if err != nil {
					t.Fatalf("TenantEvents: %v", err)
				}
				ids := []string{}
				for _, e := range got {
					ids = append(ids, e.TaskID)
				}
				if len(ids) != len(c.tasks) {
					t.Fatalf("got events of tasks %v, want %v", ids, c.tasks)
				}
				for i := range ids {
					if ids[i] != c.tasks[i] {
						t.Fatalf("got events of tasks %v, want %v", ids, c.tasks)
					}
				}
			})
		}
		t.Run("unknown status", func(t *testing.T) {
			_, err := svc.TenantEvents(ctx, commonops.EventFilter{TenantID: tenant, Statuses: []commonops.Status{"running"}})
			wantErr(t, err, commonops.EINVALID, "status")
		})
	})
}
