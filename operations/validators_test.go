package operations_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
)

// A create the check of its task type refuses is EINVALID with the
// check's field errors and stores nothing, not even its idempotency key; a
// task type without a check (a remote worker's) is created as before.
func TestCreateValidators(t *testing.T) {
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		want := []commonops.FieldError{{Field: "params.format", Message: `unknown format "pdf"`}}
		var checked []string
		svc.Validators = map[string]operations.CreateCheck{
			"import": func(in commonops.CreateInput) []commonops.FieldError {
				checked = append(checked, in.EntityType)
				if string(in.Params) == `{"format":"pdf"}` {
					return want
				}
				return nil
			},
		}
		_, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, IdempotencyKey: "k1", RequestHash: "h1",
			Input: commonops.CreateInput{TaskType: "import", EntityType: "product", Params: []byte(`{"format":"pdf"}`)}})
		var e *commonops.Error
		if !errors.As(err, &e) || e.Code != commonops.EINVALID || !slices.Equal(e.Fields, want) {
			t.Fatalf("got %v, want EINVALID with %+v", err, want)
		}
		if _, n, err := svc.List(ctx, commonops.ListFilter{TenantID: tenant}); err != nil || n != 0 {
			t.Fatalf("got %d tasks (%v) after a refused create, want 0", n, err)
		}
		// The same key with a good body creates: the refused create kept no key.
		c, replayed, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, IdempotencyKey: "k1", RequestHash: "h2",
			Input: commonops.CreateInput{TaskType: "import", EntityType: "product", Params: []byte(`{"format":"csv"}`)}})
		if err != nil || replayed {
			t.Fatalf("got %v (replayed %v), want the task created", err, replayed)
		}
		if c.Task.TaskType != "import" {
			t.Errorf("got task type %q, want import", c.Task.TaskType)
		}
		create(t, svc, commonops.CreateInput{TaskType: "remote-only", EntityType: "anything"})
		if _, n, _ := svc.List(ctx, commonops.ListFilter{TenantID: tenant}); n != 2 {
			t.Errorf("got %d tasks, want 2 (the import and the unchecked remote-only task)", n)
		}
		if !slices.Equal(checked, []string{"product", "product"}) {
			t.Errorf("got the check called for %v, want twice for product (never for remote-only)", checked)
		}
		// The root rules come first: a create they refuse never reaches the check.
		if _, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, Input: commonops.CreateInput{TaskType: "import"}}); commonops.ErrorCode(err) != commonops.EINVALID {
			t.Errorf("got %v, want EINVALID for a missing entityType", err)
		}
		if len(checked) != 2 {
			t.Errorf("got the check called %d times, want 2", len(checked))
		}
	})
}
