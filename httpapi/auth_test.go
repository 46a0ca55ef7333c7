package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/internal/logtest"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// gatewaySecret is the gateway secret of the tests' gateway mode.
const gatewaySecret = "gw-secret-7f3a9c1e55d04b2b"

// authEnv is an env in the gateway mode, API keys included.
type authEnv struct {
	*env
	st   store.Store
	keys *auth.Keys
}

// newAuthEnv starts the API on st in the gateway mode.
func newAuthEnv(t testing.TB, st store.Store, edit ...func(*Config)) *authEnv {
	t.Helper()
	keys := auth.NewKeys(st, auth.KeysConfig{Logger: discard})
	a, err := auth.NewAuthenticator(auth.Config{Mode: auth.ModeGateway, GatewaySecret: gatewaySecret, Keys: keys})
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	e := newEnv(t, st, append([]func(*Config){func(c *Config) { c.Auth, c.Logger = a, discard }}, edit...)...)
	return &authEnv{env: e, st: st, keys: keys}
}

// key creates an API key of tenant with roles (and task types) straight
// through the service, and returns it with its id.
func (a *authEnv) key(tenant string, roles []auth.Role, types ...string) (key, id string) {
	a.t.Helper()
	k, err := a.svc.CreateAPIKey(context.Background(), operations.KeyRequest{Tenant: tenant, Name: "test", Roles: roles, TaskTypes: types, CreatedBy: "test"})
	if err != nil {
		a.t.Fatalf("CreateAPIKey: %v", err)
	}
	return k.Key, k.ID
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// gw are the headers of a request through the gateway.
func gw(tenant, user, roles string) []string {
	return []string{"X-Gateway-Secret", gatewaySecret, "X-Tenant-Id", tenant, "X-User-Id", user, "X-User-Roles", roles}
}

const (
	admin     = auth.RoleAdmin
	operator  = auth.RoleOperator
	submitter = auth.RoleSubmitter
	viewer    = auth.RoleViewer
	worker    = auth.RoleWorker
)

// matrix is who may call each authenticated route: the README's table. A
// route without a row fails TestRouteRoleMatrix.
var matrix = map[string][]auth.Role{
	"POST /api/v1/operations/tasks":                           {admin, operator, submitter},
	"POST /api/v1/operations/tasks/batch":                     {admin, operator, submitter},
	"GET /api/v1/operations/tasks":                            {admin, operator, submitter, viewer},
	"GET /api/v1/operations/tasks/{id}":                       {admin, operator, submitter, viewer},
	"DELETE /api/v1/operations/tasks/{id}":                    {admin, operator},
	"POST /api/v1/operations/tasks/{id}/cancel":               {admin, operator, submitter},
	"POST /api/v1/operations/tasks/{id}/retry":                {admin, operator, submitter},
	"POST /api/v1/operations/tasks/{id}/upload-complete":      {admin, operator, submitter},
	"GET /api/v1/operations/tasks/{id}/download":              {admin, operator, submitter, viewer},
	"GET /api/v1/operations/tasks/{id}/logs":                  {admin, operator, submitter, viewer},
	"GET /api/v1/operations/tasks/{id}/events":                {admin, operator, submitter, viewer},
	"GET /api/v1/operations/tasks/{id}/deliveries":            {admin, operator, submitter, viewer},
	"GET /api/v1/operations/events":                           {admin, operator, submitter, viewer},
	"GET /api/v1/operations/queues":                           {admin, operator, viewer},
	"POST /api/v1/operations/tasks/{id}/claim":                {worker},
	"PATCH /api/v1/operations/tasks/{id}/progress":            {worker},
	"POST /api/v1/operations/tasks/{id}/logs":                 {worker},
	"POST /api/v1/operations/tasks/{id}/output-url":           {worker},
	"GET /api/v1/operations/flow-controls":                    {admin, operator, viewer},
	"PUT /api/v1/operations/flow-controls/{taskType}":         {admin, operator},
	"POST /api/v1/operations/flow-controls/{taskType}/pause":  {admin, operator},
	"POST /api/v1/operations/flow-controls/{taskType}/resume": {admin, operator},
	"POST /api/v1/operations/schedules":                       {admin, operator, submitter},
	"GET /api/v1/operations/schedules":                        {admin, operator, submitter, viewer},
	"GET /api/v1/operations/schedules/{scheduleId}":           {admin, operator, submitter, viewer},
	"PUT /api/v1/operations/schedules/{scheduleId}":           {admin, operator, submitter},
	"DELETE /api/v1/operations/schedules/{scheduleId}":        {admin, operator, submitter},
	"POST /api/v1/operations/schedules/{scheduleId}/pause":    {admin, operator, submitter},
	"POST /api/v1/operations/schedules/{scheduleId}/resume":   {admin, operator, submitter},
	"POST /api/v1/operations/apikeys":                         {admin},
	"GET /api/v1/operations/apikeys":                          {admin},
	"DELETE /api/v1/operations/apikeys/{keyId}":               {admin},
	"POST /api/v1/operations/webhooks":                        {admin, operator},
	"GET /api/v1/operations/webhooks":                         {admin, operator},
	"DELETE /api/v1/operations/webhooks/{subscriptionId}":     {admin, operator},
}

// TestRouteRoleMatrix walks every route × every role, with an API key and
// through the gateway, and checks the route's policy: a denied role is a
// 403 problem, an allowed one gets past the policy (any answer but 401 and
// 403). A new route without a row in matrix fails here.
func TestRouteRoleMatrix(t *testing.T) {
	t.Parallel()
	a := newAuthEnv(t, testdb.SQLite(t))
	task := a.create(simple, gw("t1", "someone", "submitter")...)
	for _, rt := range (&server{}).routes() {
		if rt.policy.public {
			continue
		}
		allowed, ok := matrix[rt.pattern()]
		if !ok {
			t.Errorf("route %s has no row in the role matrix", rt.pattern())
			continue
		}
		for _, role := range auth.Roles {
			path := strings.NewReplacer("{id}", task.ID, "{keyId}", "nosuchkey", "{scheduleId}", "0b7e9d5c-2f0a-4c55-9a3e-6f1d2c3b4a59").Replace(rt.path)
			key, _ := a.key("t1", []auth.Role{role})
			for via, headers := range map[string][]string{"apikey": bearer(key), "gateway": gw("t1", "u-"+string(role), string(role))} {
				t.Run(fmt.Sprintf("%s/%s/%s", rt.pattern(), role, via), func(t *testing.T) {
					r := a.as(t).do(rt.method, path, "{}", headers...)
					switch {
					case slices.Contains(allowed, role) && (r.status == 401 || r.status == 403):
						t.Errorf("%s may call it: got %d %s", role, r.status, r.body)
					case !slices.Contains(allowed, role):
						if p := r.want(t, http.StatusForbidden).problem(t); p.Type != problemBase+"forbidden" {
							t.Errorf("got problem type %s, want forbidden", p.Type)
						}
					}
				})
			}
		}
	}
	for pattern := range matrix {
		if !slices.ContainsFunc((&server{}).routes(), func(rt route) bool { return rt.pattern() == pattern }) {
			t.Errorf("the matrix names %s, which is no route", pattern)
		}
	}
}

// matrixMarkdown is the role matrix as the README shows it.
func matrixMarkdown() string {
	var b strings.Builder
	b.WriteString("| Route |")
	for _, r := range auth.Roles {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(auth.Roles)) + "\n")
	for _, rt := range (&server{}).routes() {
		allowed, ok := matrix[rt.pattern()]
		if !ok {
			continue
		}
		own := rt.policy.own
		fmt.Fprintf(&b, "| `%s %s` |", rt.method, strings.TrimPrefix(rt.path, prefix))
		for _, r := range auth.Roles {
			switch {
			case slices.Contains(own, r) && !slices.Contains(rt.policy.all, r):
				b.WriteString(" own |")
			case slices.Contains(allowed, r):
				b.WriteString(" yes |")
			default:
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestREADMEHasRoleMatrix checks that the README shows the matrix the
// routes enforce.
func TestREADMEHasRoleMatrix(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	if want := matrixMarkdown(); !strings.Contains(string(readme), want) {
		t.Errorf("README.md lacks the role matrix; want:\n%s", want)
	}
}

// TestAuthBadInput sends every kind of bad credential and checks that each
// gets its precise 401, 403 or 429 problem and that nothing changed.
func TestAuthBadInput(t *testing.T) {
	t.Parallel()
	eachStore(t, testAuthBadInput)
}

func testAuthBadInput(t *testing.T, st store.Store) {
	a := newAuthEnv(t, st)
	ctx := context.Background()
	subA, subAID := a.key("ta", []auth.Role{submitter})
	subA2, _ := a.key("ta", []auth.Role{submitter})
	adminA, _ := a.key("ta", []auth.Role{admin})
	opB, opBID := a.key("tb", []auth.Role{operator})
	unknown, _, _ := auth.NewKey()
	workerA, _ := a.key("ta", []auth.Role{worker}, "import")
	revoked, revokedID := a.key("ta", []auth.Role{operator})
	a.do("DELETE", prefix+"/apikeys/"+revokedID, nil, bearer(adminA)...).want(t, http.StatusNoContent)
	expired, expiredID, expiredHash := auth.NewKey()
	if err := st.CreateAPIKey(ctx, &auth.APIKey{ID: expiredID, Tenant: "ta", Name: "old", Roles: []auth.Role{operator}, Hash: expiredHash,
		CreatedBy: "test", CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: ptr(time.Now().Add(-time.Hour))}); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	mine := a.create(simple, bearer(subA)...)
	export := a.create(map[string]any{"taskType": "export", "entityType": "product"}, bearer(subA)...)
	theirs := a.create(simple, bearer(opB)...)

	snapshot := func() []byte {
		var b bytes.Buffer
		for _, k := range []string{adminA, opB} {
			b.Write(a.do("GET", tasksPath+"?pageSize=1000", nil, bearer(k)...).want(t, http.StatusOK).body)
		}
		for _, tk := range []struct{ id, key string }{{mine.ID, adminA}, {export.ID, adminA}, {theirs.ID, opB}} {
			b.Write(a.do("GET", taskPath(tk.id), nil, bearer(tk.key)...).want(t, http.StatusOK).body)
			b.Write(a.do("GET", taskPath(tk.id, "/events"), nil, bearer(tk.key)...).want(t, http.StatusOK).body)
		}
		return b.Bytes()
	}
	before := snapshot()

	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		status  int
		detail  string
	}{
		{"no credentials", "GET", tasksPath, nil, nil, 401, "did not come through the gateway"},
		{"not a bearer", "GET", tasksPath, nil, []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "must be Bearer"},
		{"empty bearer", "GET", tasksPath, nil, []string{"Authorization", "Bearer "}, 401, "must be Bearer"},
		{"malformed key", "GET", tasksPath, nil, bearer("co_short"), 401, "not a well-formed API key"},
		{"unknown key", "GET", tasksPath, nil, bearer(unknown), 401, "unknown API key"},
		{"expired key", "GET", tasksPath, nil, bearer(expired), 401, "has expired"},
		{"revoked key", "POST", taskPath(mine.ID, "/cancel"), nil, bearer(revoked), 401, "was revoked"},
		{"gateway without secret", "POST", taskPath(mine.ID, "/cancel"), nil,
			[]string{"X-Tenant-Id", "ta", "X-User-Id", "mallory", "X-User-Roles", "operator"}, 401, "did not come through the gateway"},
		{"gateway with a wrong secret", "POST", taskPath(mine.ID, "/cancel"), nil,
			[]string{"X-Gateway-Secret", "guess", "X-Tenant-Id", "ta", "X-User-Id", "mallory", "X-User-Roles", "operator"}, 401, "secret is wrong"},
		{"key of another tenant", "POST", taskPath(theirs.ID, "/cancel"), nil, append(bearer(subA), "X-Tenant-Id", "tb"), 403, "only a platform admin"},
		{"task of another tenant", "POST", taskPath(theirs.ID, "/cancel"), nil, bearer(adminA), 404, "not found"},
		{"worker creates", "POST", tasksPath, simple, bearer(workerA), 403, "needs one of the roles"},
		{"worker claims another type", "POST", taskPath(export.ID, "/claim"), map[string]any{"workerId": "w"}, bearer(workerA), 403, `not "export"`},
		{"worker reports on another type", "PATCH", taskPath(export.ID, "/progress"), map[string]any{"progress": 5}, bearer(workerA), 403, `not "export"`},
		{"worker logs on another type", "POST", taskPath(export.ID, "/logs"), map[string]any{"logs": []any{map[string]any{"message": "x"}}}, bearer(workerA), 403, `not "export"`},
		{"worker output URL of another type", "POST", taskPath(export.ID, "/output-url"), map[string]any{"fileName": "o.csv"}, bearer(workerA), 403, `not "export"`},
		{"submitter cancels another's task", "POST", taskPath(mine.ID, "/cancel"), nil, bearer(subA2), 404, "not found"},
		{"submitter retries another's task", "POST", taskPath(mine.ID, "/retry"), nil, bearer(subA2), 404, "not found"},
		{"submitter reads another's task", "GET", taskPath(mine.ID), nil, bearer(subA2), 404, "not found"},
		{"submitter deletes", "DELETE", taskPath(mine.ID), nil, bearer(subA), 403, "needs one of the roles"},
		{"submitter creates a key", "POST", prefix + "/apikeys", map[string]any{"name": "x", "roles": []string{"admin"}}, bearer(subA), 403, "needs one of the roles"},
		{"admin creates a platform admin key", "POST", prefix + "/apikeys", map[string]any{"name": "x", "roles": []string{"admin"}, "platformAdmin": true}, bearer(adminA), 403, "only a platform admin"},
		{"admin creates a key of another tenant", "POST", prefix + "/apikeys", map[string]any{"name": "x", "roles": []string{"admin"}, "tenant": "tb"}, bearer(adminA), 403, "only a platform admin"},
		{"admin revokes a key of another tenant", "DELETE", prefix + "/apikeys/" + opBID, nil, bearer(adminA), 404, "not found"},
		{"submitter revokes a key", "DELETE", prefix + "/apikeys/" + subAID, nil, bearer(subA), 403, "needs one of the roles"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := a.as(t).do(c.method, c.path, c.body, c.headers...).want(t, c.status)
			p := r.problem(t)
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("detail: got %q, want it to contain %q", p.Detail, c.detail)
			}
			if c.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	if after := snapshot(); !bytes.Equal(before, after) {
		t.Errorf("bad credentials changed something:\nbefore %s\nafter  %s", before, after)
	}

	t.Run("burst past the rate limit", func(t *testing.T) {
		// Another replica on the same store, with a limit of 1/s in
		// bursts of 5 per caller.
		clock := &fakeClock{now: time.Now()}
		limited := newAuthEnv(t, st, func(c *Config) { c.RateLimit, c.RateBurst, c.Now = 1, 5, clock.Now })
		for range 5 {
			limited.do("GET", tasksPath, nil, bearer(subA)...).want(t, http.StatusOK)
		}
		r := limited.do("POST", tasksPath, simple, bearer(subA)...).want(t, http.StatusTooManyRequests)
		if p := r.problem(t); p.Type != problemBase+"too-many-requests" || r.header.Get("Retry-After") != "1" {
			t.Errorf("got %s with Retry-After %q, want too-many-requests with 1", p.Type, r.header.Get("Retry-After"))
		}
		clock.Set(clock.Now().Add(time.Second))
		limited.do("GET", tasksPath, nil, bearer(subA)...).want(t, http.StatusOK)
	})
	if after := snapshot(); !bytes.Equal(before, after) {
		t.Errorf("the burst changed something")
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

func ptr[T any](v T) *T { return &v }

// TestTenantIsolationWithKeys runs two tenants side by side, each with its own
// keys: each creates, lists, gets, downloads and cancels its tasks, and
// neither sees or touches the other's tasks, files, logs, events or keys.
func TestTenantIsolationWithKeys(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		a := newAuthEnv(t, st)
		type side struct {
			tenant, sub, op, adm string
			task, file           commonops.Task
		}
		sides := []*side{{tenant: "acme"}, {tenant: "globex"}}
		for _, s := range sides {
			s.sub, _ = a.key(s.tenant, []auth.Role{submitter})
			s.op, _ = a.key(s.tenant, []auth.Role{operator})
			s.adm, _ = a.key(s.tenant, []auth.Role{admin})
			s.task = a.create(simple, bearer(s.sub)...)
			var c operations.Created
			a.do("POST", tasksPath, map[string]any{"taskType": "import", "entityType": "product", "fileName": "in.csv"}, bearer(s.sub)...).
				want(t, http.StatusCreated).decode(t, &c)
			s.file = *c.Task
			req, _ := http.NewRequest(*c.UploadMethod, *c.UploadURL, strings.NewReader("a,b\n"))
			for k, v := range c.UploadHeaders {
				req.Header.Set(k, v)
			}
			resp, err := a.srv.Client().Do(req)
			if err != nil || resp.StatusCode >= 300 {
				t.Fatalf("upload: %v %v", resp, err)
			}
			resp.Body.Close()
			a.do("POST", taskPath(s.file.ID, "/upload-complete"), nil, bearer(s.sub)...).want(t, http.StatusOK)
		}
		for i, s := range sides {
			o := sides[1-i]
			var page listPage
			a.do("GET", tasksPath, nil, bearer(s.op)...).want(t, http.StatusOK).decode(t, &page)
			if len(page.Tasks) != 2 || page.Total != 2 {
				t.Errorf("%s lists %d tasks (total %d), want its 2", s.tenant, len(page.Tasks), page.Total)
			}
			for _, tk := range page.Tasks {
				if tk.TenantID != s.tenant {
					t.Errorf("%s lists a task of %s", s.tenant, tk.TenantID)
				}
			}
			for _, key := range []string{s.sub, s.op} {
				a.do("GET", taskPath(s.task.ID), nil, bearer(key)...).want(t, http.StatusOK)
				a.do("GET", taskPath(s.file.ID, "/download?file=input"), nil, bearer(key)...).want(t, http.StatusOK)
				for _, path := range []string{taskPath(o.task.ID), taskPath(o.task.ID, "/events"), taskPath(o.task.ID, "/logs"), taskPath(o.file.ID, "/download?file=input")} {
					a.do("GET", path, nil, bearer(key)...).want(t, http.StatusNotFound)
				}
				a.do("POST", taskPath(o.task.ID, "/cancel"), nil, bearer(key)...).want(t, http.StatusNotFound)
				a.do("GET", tasksPath, nil, append(bearer(key), "X-Tenant-Id", o.tenant)...).want(t, http.StatusForbidden)
			}
			a.do("DELETE", taskPath(o.task.ID), nil, bearer(s.op)...).want(t, http.StatusNotFound)
			var keys keyList
			a.do("GET", prefix+"/apikeys", nil, bearer(s.adm)...).want(t, http.StatusOK).decode(t, &keys)
			if len(keys.Keys) != 3 {
				t.Errorf("%s lists %d keys, want its 3", s.tenant, len(keys.Keys))
			}
			for _, k := range keys.Keys {
				if k.Tenant != s.tenant {
					t.Errorf("%s lists a key of %s", s.tenant, k.Tenant)
				}
			}
		}
		for _, s := range sides {
			got := a.do("POST", taskPath(s.task.ID, "/cancel"), nil, bearer(s.sub)...).want(t, http.StatusOK).task(t)
			if got.Status != commonops.StatusCancelled {
				t.Errorf("%s cancel: got %s, want cancelled", s.tenant, got.Status)
			}
			// Who cancelled is in the task's events.
			var evs struct {
				Events []commonops.Event `json:"events"`
			}
			a.do("GET", taskPath(s.task.ID, "/events"), nil, bearer(s.op)...).want(t, http.StatusOK).decode(t, &evs)
			id, _ := auth.ParseKey(s.sub)
			last := evs.Events[len(evs.Events)-1]
			var data map[string]any
			_ = json.Unmarshal(last.EventData, &data)
			if last.EventType != commonops.EventCancelled || data["actor"] != "apikey:"+id {
				t.Errorf("%s: last event %s with actor %v, want cancelled by apikey:%s", s.tenant, last.EventType, data["actor"], id)
			}
		}
	})
}

// TestSecretsNeverLogged runs a scenario with keys and the gateway secret,
// bad ones included, and greps every log line for them.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	var buf logtest.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := newAuthEnv(t, testdb.SQLite(t), func(c *Config) { c.Logger = logger })
	adm, _ := a.key("t1", []auth.Role{admin})
	var created operations.NewKey
	a.do("POST", prefix+"/apikeys", map[string]any{"name": "w", "roles": []string{"worker", "submitter"}}, bearer(adm)...).want(t, http.StatusCreated).decode(t, &created)
	tk := a.create(simple, bearer(created.Key)...)
	a.claim(tk.ID, bearer(created.Key)...)
	a.do("GET", taskPath(tk.ID), nil, gw("t1", "u", "viewer")...).want(t, http.StatusOK)
	a.do("GET", tasksPath, nil, "Authorization", "Bearer "+created.Key+"x").want(t, http.StatusUnauthorized)
	a.do("DELETE", prefix+"/apikeys/"+created.ID, nil, bearer(adm)...).want(t, http.StatusNoContent)
	a.do("GET", tasksPath, nil, bearer(created.Key)...).want(t, http.StatusUnauthorized)
	a.do("GET", "/nowhere", nil, bearer(adm)...).want(t, http.StatusNotFound)
	logs := buf.String()
	if !strings.Contains(logs, `"actor":"apikey:`+created.ID+`"`) {
		t.Errorf("the request log lacks the actor apikey:%s:\n%s", created.ID, logs)
	}
	for _, secret := range []string{adm, created.Key, gatewaySecret, secretPart(adm), secretPart(created.Key)} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold a secret %q", secret[:6]+"...")
		}
	}
}

// secretPart is the part of key after its id.
func secretPart(key string) string { return key[strings.LastIndex(key, "_")+1:] }

// A key's tenant is held to the identity headers' rules: a NUL in it was a
// 500 on PostgreSQL (the contract fuzzer found it).
func TestAPIKeyTenantMustBePrintable(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		for _, tenant := range []string{"a\u0000b", strings.Repeat("t", 129), "tab\there"} {
			p := e.do("POST", prefix+"/apikeys", map[string]any{"name": "k", "roles": []string{"viewer"}, "tenant": tenant}).want(t, http.StatusUnprocessableEntity).problem(t)
			if len(p.Errors) != 1 || p.Errors[0].Field != "tenant" {
				t.Errorf("tenant %q: got errors %+v, want one on tenant", tenant, p.Errors)
			}
		}
	})
}
