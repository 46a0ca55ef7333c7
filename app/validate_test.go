package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/worker"
)

// newApp makes an app of the given roles over its own SQLite file, with
// the example product configuration when withConfig.
func newApp(t *testing.T, roles string, withConfig bool) *app.App {
	t.Helper()
	dir := t.TempDir()
	cfg := app.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"), Roles: roles, Logger: quiet()}
	if withConfig {
		cfg.ConfigFile = filepath.Join("..", "examples", "product", "commonops.yaml")
	}
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// post sends a create through the API and returns the status and problem.
func post(t *testing.T, a *app.App, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/operations/tasks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	a.Handler().ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func countTasks(t *testing.T, a *app.App) int {
	t.Helper()
	_, n, err := a.Service().List(context.Background(), commonops.ListFilter{TenantID: commonops.DefaultTenant})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A process with only the api role loads the entity configuration and
// refuses with 422 what its workers could never run, creating nothing;
// what they can run, and a task type no one here knows, are created.
func TestAPIRoleRefusesWhatCannotRun(t *testing.T) {
	t.Parallel()
	a := newApp(t, app.RoleAPI, true)
	for _, tt := range []struct {
		name, body, field, message string
	}{
		{"unknown entity", `{"taskType":"export","entityType":"prodcut"}`,
			"entityType", `"prodcut" cannot be exported: the exportable entities are product, task`},
		{"import without file", `{"taskType":"import","entityType":"product"}`,
			"fileName", "is required: an import reads its input file"},
		{"unknown format", `{"taskType":"import","entityType":"product","fileName":"p.csv","params":{"format":"pdf"}}`,
			"params.format", `unknown format "pdf" (want csv, jsonl or xlsx)`},
		{"dryRun of the wrong type", `{"taskType":"import","entityType":"product","fileName":"p.csv","params":{"dryRun":"yes"}}`,
			"params.dryRun", "must be true or false"},
		{"params schema", `{"taskType":"export","entityType":"product","params":{"category":7}}`,
			"params.category", "got number, want string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, problem := post(t, a, tt.body)
			errs, _ := problem["errors"].([]any)
			if code != http.StatusUnprocessableEntity || len(errs) != 1 {
				t.Fatalf("got %d %v, want 422 with one field error", code, problem)
			}
			fe := errs[0].(map[string]any)
			if fe["field"] != tt.field || fe["message"] != tt.message {
				t.Errorf("got %v: %v, want %s: %s", fe["field"], fe["message"], tt.field, tt.message)
			}
		})
	}
	if n := countTasks(t, a); n != 0 {
		t.Fatalf("got %d tasks after the refused creates, want 0", n)
	}
	for _, body := range []string{
		`{"taskType":"import","entityType":"product","fileName":"p.csv","params":{"format":"csv","dryRun":true}}`,
		`{"taskType":"export","entityType":"product","params":{"category":"fruit"}}`,
		`{"taskType":"resize","entityType":"image"}`,
	} {
		if code, out := post(t, a, body); code != http.StatusCreated {
			t.Errorf("got %d %v for %s, want 201", code, out, body)
		}
	}
}

// An api process without a configuration cannot know what its workers
// run, so it checks nothing; a worker without one knows it runs only the
// task export, unless a processor registered on it takes the entity.
func TestValidatorsFollowTheRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := commonops.CreateInput{TaskType: "export", EntityType: "orders"}
	create := func(a *app.App) error {
		_, _, err := a.Service().Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant, Input: in})
		return err
	}
	if err := create(newApp(t, app.RoleAPI, false)); err != nil {
		t.Errorf("api role without config: got %v, want the task created", err)
	}
	all := newApp(t, "", false)
	err := create(all)
	var e *commonops.Error
	want := []commonops.FieldError{{Field: "entityType", Message: `"orders" cannot be exported: the exportable entities are task`}}
	if commonops.ErrorCode(err) != commonops.EINVALID || !errors.As(err, &e) || !slices.Equal(e.Fields, want) {
		t.Errorf("all roles without config: got %v, want EINVALID %+v", err, want)
	}
	all.Register("export", "orders", worker.ProcessorFunc(func(context.Context, worker.Job) error { return nil }))
	if err := create(all); err != nil {
		t.Errorf("with a registered orders export: got %v, want the task created", err)
	}
}

// The console's OIDC client is a setting of the oidc mode: anywhere else it
// would be silently ignored, so it is refused, naming the flag.
func TestConsoleClientNeedsOIDC(t *testing.T) {
	t.Parallel()
	for _, cfg := range []app.Config{
		{OIDCConsoleClientID: "console"},
		{Auth: "gateway", GatewaySecret: "secret", OIDCConsoleClientID: "console"},
	} {
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "oidc-console-client-id needs auth oidc") {
			t.Errorf("auth %q with a console client: got %v, want it refused naming oidc-console-client-id", cfg.Auth, err)
		}
	}
	if err := (app.Config{Auth: "oidc", OIDCIssuer: "https://issuer.example", OIDCAudience: "commonops", OIDCConsoleClientID: "commonops"}).Validate(); err == nil || !strings.Contains(err.Error(), "is the API's oidc-audience") {
		t.Errorf("a console client named as the API's audience: got %v, want it refused (its ID tokens would pass as access tokens)", err)
	}
	if err := (app.Config{Auth: "oidc", OIDCIssuer: "https://issuer.example", OIDCConsoleClientID: "console"}).Validate(); err != nil {
		t.Errorf("auth oidc with a console client: got %v, want it valid", err)
	}
}
