package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/internal/oidctest"
	"github.com/commonops/commonops/internal/testdb"
)

// databaseURL is a fresh database of driver for one test: a SQLite file
// under t.TempDir(), or a PostgreSQL schema of its own (search_path),
// dropped when the test ends.
func databaseURL(t testing.TB, driver string) string {
	t.Helper()
	if driver == "sqlite" {
		return "sqlite:" + filepath.Join(t.TempDir(), "ops.db")
	}
	base := testdb.PostgresURL(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "app_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL at %s: %v", base, err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		conn.Close(context.Background())
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// startAPI starts the API role of cfg on a port of its own and returns its
// base URL; it stops when the test ends.
func startAPI(t testing.TB, cfg app.Config) (*app.App, string) {
	t.Helper()
	cfg.Addr, cfg.Roles, cfg.Logger = "127.0.0.1:0", app.RoleAPI, quiet()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(a.Stop)
	return a, "http://" + a.Addr()
}

// oidcConfig serves the oidc mode for p, with the rate limits off.
func oidcConfig(p *oidctest.Provider, databaseURL string) app.Config {
	return app.Config{DatabaseURL: databaseURL, Auth: "oidc", OIDCIssuer: p.Issuer(), OIDCAudience: oidctest.Audience,
		OIDCHTTPClient: p.HTTPClient(), RateLimit: -1, TenantRateLimit: -1}
}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// api calls the task API at base with a bearer token ("" for none).
func api(t testing.TB, base, token, method, path string, body any) reply {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+"/api/v1/operations"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails unless the answer has status, and decodes it into out.
func (r reply) want(t testing.TB, what string, status int, out any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got %d %s, want %d", what, r.status, r.body, status)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s: decode %s: %v", what, r.body, err)
		}
	}
}

// fetch GETs or PUTs a signed file URL.
func fetch(t testing.TB, method, u, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

type createdTask struct {
	Task      commonops.Task `json:"task"`
	UploadURL string         `json:"uploadUrl"`
}

// TestOIDCEndToEnd serves --auth oidc through app.New against a real
// OpenID Provider on both stores: two tenants' tokens each create, list,
// get, download and cancel, and neither reaches the other's tasks, files,
// logs or events; the roles and the task-type scope of the tokens hold;
// bad tokens get precise 401 problems; a signing-key rotation keeps the
// API working; and the events name the token's subject as the actor.
func TestOIDCEndToEnd(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			testOIDCEndToEnd(t, driver)
		})
	}
}

func testOIDCEndToEnd(t *testing.T, driver string) {
	p := oidctest.Start(t, map[string]map[string]any{
		"alice":  {"tenant": "acme", "roles": []string{"submitter"}},
		"bob":    {"tenant": "acme", "roles": []string{"submitter"}},
		"olga":   {"tenant": "acme", "roles": []string{"operator"}},
		"vera":   {"tenant": "acme", "roles": []string{"viewer"}},
		"wanda":  {"tenant": "acme", "roles": []string{"worker"}, "task_types": "resize"},
		"gordon": {"tenant": "globex", "roles": []string{"admin"}},
	})
	_, base := startAPI(t, oidcConfig(p, databaseURL(t, driver)))
	tok := map[string]string{}
	for _, c := range []string{"alice", "bob", "olga", "vera", "wanda", "gordon"} {
		tok[c] = p.Token(t, c)
	}
	call := func(who, method, path string, body any) reply {
		t.Helper()
		return api(t, base, tok[who], method, path, body)
	}
	// create makes a task of type with an input file, uploads body and
	// returns its ID.
	create := func(who, taskType, body string) string {
		t.Helper()
		var c createdTask
		call(who, "POST", "/tasks", map[string]any{"taskType": taskType, "entityType": "image", "fileName": "in.csv"}).
			want(t, who+" creates", http.StatusCreated, &c)
		if got := fetch(t, "PUT", c.UploadURL, body); got.status != http.StatusOK {
			t.Fatalf("%s uploads: got %d %s, want 200", who, got.status, got.body)
		}
		if c.Task.TenantID != map[bool]string{true: "globex", false: "acme"}[who == "gordon"] || c.Task.RequestedBy != who {
			t.Fatalf("%s's task: got tenant %q requestedBy %q", who, c.Task.TenantID, c.Task.RequestedBy)
		}
		return c.Task.ID
	}
	// download fetches the input of task id as who.
	download := func(who, id string) string {
		t.Helper()
		var d struct {
			DownloadURL string `json:"downloadUrl"`
		}
		call(who, "GET", "/tasks/"+id+"/download?file=input", nil).want(t, who+" downloads "+id, http.StatusOK, &d)
		got := fetch(t, "GET", d.DownloadURL, "")
		if got.status != http.StatusOK {
			t.Fatalf("%s fetches the input of %s: got %d %s", who, id, got.status, got.body)
		}
		return string(got.body)
	}
	// list is the IDs of the tasks who sees.
	list := func(who string) []string {
		t.Helper()
		var page struct {
			Tasks []commonops.Task `json:"tasks"`
		}
		call(who, "GET", "/tasks", nil).want(t, who+" lists", http.StatusOK, &page)
		var ids []string
		for _, tk := range page.Tasks {
			ids = append(ids, tk.ID)
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

	aliceTask := create("alice", "resize", "alice's input")
	aliceOther := create("alice", "thumbnail", "alice's thumbnail input")
	bobTask := create("bob", "resize", "bob's input")
	gordonTask := create("gordon", "resize", "gordon's input")

	t.Run("each tenant sees its own", func(t *testing.T) {
		if got, want := list("alice"), sorted(aliceTask, aliceOther); !slices.Equal(got, want) {
			t.Errorf("alice lists %v, want her own tasks %v", got, want)
		}
		if got, want := list("vera"), sorted(aliceTask, aliceOther, bobTask); !slices.Equal(got, want) {
			t.Errorf("the acme viewer lists %v, want acme's tasks %v", got, want)
		}
		if got, want := list("gordon"), []string{gordonTask}; !slices.Equal(got, want) {
			t.Errorf("the globex admin lists %v, want %v", got, want)
		}
		if got := download("alice", aliceTask); got != "alice's input" {
			t.Errorf("alice downloads %q, want her input", got)
		}
		if got := download("gordon", gordonTask); got != "gordon's input" {
			t.Errorf("gordon downloads %q, want his input", got)
		}
		call("vera", "GET", "/tasks/"+bobTask, nil).want(t, "the viewer gets bob's task", http.StatusOK, nil)
	})

	// The worker claims alice's resize task and logs, so there are logs to
	// keep from the other tenant.
	call("wanda", "POST", "/tasks/"+aliceTask+"/claim", map[string]any{"workerId": "w1"}).
		want(t, "the resize worker claims a resize task", http.StatusOK, nil)
	call("wanda", "POST", "/tasks/"+aliceTask+"/logs", map[string]any{"attempt": 1,
		"logs": []map[string]any{{"level": "info", "message": "acme secret log line"}}}).
		want(t, "the worker logs", http.StatusCreated, nil)

	t.Run("no reach across tenants or subjects", func(t *testing.T) {
		for _, tt := range []struct {
			who, task string
		}{
			{"gordon", aliceTask}, // another tenant, even as its admin
			{"alice", gordonTask},
			{"bob", aliceTask}, // a submitter, on another subject's task
		} {
			for _, path := range []string{"", "/download?file=input", "/logs", "/events"} {
				got := call(tt.who, "GET", "/tasks/"+tt.task+path, nil)
				if got.status != http.StatusNotFound {
					t.Errorf("%s GET %s%s: got %d %s, want 404", tt.who, tt.task, path, got.status, got.body)
				}
				if bytes.Contains(got.body, []byte("secret log line")) || bytes.Contains(got.body, []byte("downloadUrl")) {
					t.Errorf("%s GET %s%s leaked %s", tt.who, tt.task, path, got.body)
				}
			}
			for _, op := range []string{"cancel", "retry"} {
				if got := call(tt.who, "POST", "/tasks/"+tt.task+"/"+op, nil); got.status != http.StatusNotFound {
					t.Errorf("%s %s %s: got %d %s, want 404", tt.who, op, tt.task, got.status, got.body)
				}
			}
		}
		if got := call("gordon", "DELETE", "/tasks/"+aliceTask, nil); got.status != http.StatusNotFound {
			t.Errorf("gordon deletes alice's task: got %d %s, want 404", got.status, got.body)
		}
		var tk commonops.Task
		call("olga", "GET", "/tasks/"+aliceTask, nil).want(t, "the operator gets alice's task", http.StatusOK, &tk)
		if tk.Status != commonops.StatusProcessing || tk.CancelRequested {
			t.Errorf("alice's task after the others tried: got %s cancelRequested %v, want processing, untouched", tk.Status, tk.CancelRequested)
		}
	})

	t.Run("roles and task-type scope", func(t *testing.T) {
		got := call("vera", "POST", "/tasks", map[string]any{"taskType": "resize", "entityType": "image"})
		if got.status != http.StatusForbidden || !bytes.Contains(got.body, []byte("the caller has viewer")) {
			t.Errorf("the viewer creates: got %d %s, want 403 naming its roles", got.status, got.body)
		}
		if got := call("wanda", "POST", "/tasks/"+aliceOther+"/claim", map[string]any{"workerId": "w1"}); got.status != http.StatusForbidden ||
			!bytes.Contains(got.body, []byte(`may work only on task types resize, not \"thumbnail\"`)) {
			t.Errorf("the resize worker claims a thumbnail task: got %d %s, want 403 naming its scope", got.status, got.body)
		}
		var tk commonops.Task
		call("vera", "GET", "/tasks/"+aliceOther, nil).want(t, "get the thumbnail task", http.StatusOK, &tk)
		if tk.Status != commonops.StatusPending {
			t.Errorf("the thumbnail task after the resize worker tried: got %s, want pending", tk.Status)
		}
		if got := call("wanda", "GET", "/tasks", nil); got.status != http.StatusForbidden {
			t.Errorf("the worker lists: got %d %s, want 403", got.status, got.body)
		}
	})

	t.Run("cancel and retry name the actor", func(t *testing.T) {
		var tk commonops.Task
		call("alice", "POST", "/tasks/"+aliceOther+"/cancel", nil).want(t, "alice cancels her task", http.StatusOK, &tk)
		if tk.Status != commonops.StatusCancelled {
			t.Fatalf("alice's cancelled task: got %s, want cancelled", tk.Status)
		}
		call("gordon", "POST", "/tasks/"+gordonTask+"/cancel", nil).want(t, "gordon cancels his task", http.StatusOK, nil)
		call("olga", "POST", "/tasks/"+aliceOther+"/retry", nil).want(t, "the operator retries it", http.StatusOK, nil)

		var page struct {
			Events []commonops.Event `json:"events"`
		}
		call("alice", "GET", "/tasks/"+aliceOther+"/events", nil).want(t, "alice reads the events", http.StatusOK, &page)
		actors := map[string]string{}
		for _, e := range page.Events {
			var data struct {
				Actor string `json:"actor"`
			}
			if err := json.Unmarshal(e.EventData, &data); err != nil {
				t.Fatalf("event %d data %s: %v", e.ID, e.EventData, err)
			}
			actors[e.EventType] = data.Actor
		}
		for event, want := range map[string]string{commonops.EventCreated: "oidc:alice", commonops.EventCancelled: "oidc:alice", commonops.EventRetried: "oidc:olga"} {
			if got := actors[event]; got != want {
				t.Errorf("the %s event's actor: got %q, want %q (events %v)", event, got, want, actors)
			}
		}
	})

	t.Run("bad tokens get 401 problems", func(t *testing.T) {
		key := p.SigningKey()
		spoil := func(change func(map[string]any)) string {
			c := p.Claims()
			change(c)
			return p.Sign(t, key, c)
		}
		none, err := gojwt.NewWithClaims(gojwt.SigningMethodNone, gojwt.MapClaims(p.Claims())).
			SignedString(gojwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name, token, detail string
		}{
			{"none", "", "authentication required: send Authorization: Bearer <token>"},
			{"expired", spoil(func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), "token expired at"},
			{"wrong audience", spoil(func(c map[string]any) { c["aud"] = []string{"other"} }), `token is for audience ["other"], want "commonops"`},
			{"alg none", none, `token algorithm "none" is not accepted`},
			{"unknown kid", p.Sign(t, oidctest.NewKey("not-published", key.Private()), p.Claims()), `token signed with unknown key "not-published"`},
			{"not a JWT", "garbage", "malformed bearer token"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got := api(t, base, tt.token, "GET", "/tasks", nil)
				var problem struct {
					Status int    `json:"status"`
					Detail string `json:"detail"`
				}
				got.want(t, "GET /tasks", http.StatusUnauthorized, &problem)
				if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
					t.Errorf("got Content-Type %q, want application/problem+json", ct)
				}
				if h := got.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("got WWW-Authenticate %q, want Bearer", h)
				}
				if problem.Status != http.StatusUnauthorized || !strings.HasPrefix(problem.Detail, tt.detail) {
					t.Errorf("got problem %d %q, want 401 %q", problem.Status, problem.Detail, tt.detail)
				}
			})
		}
	})

	t.Run("signing-key rotation", func(t *testing.T) {
		old, current := p.Rotate()
		rotated := p.Token(t, "alice")
		// A token of the old key the server has not seen still verifies:
		// the old key stays published.
		oldClaims := p.Claims()
		oldClaims["sub"], oldClaims["roles"] = "alice", []string{"submitter"}
		call := func(token string) reply { return api(t, base, token, "GET", "/tasks/"+aliceTask, nil) }
		if got := call(p.Sign(t, old, oldClaims)); got.status != http.StatusOK {
			t.Errorf("a new token of the old key after rotation: got %d %s, want 200", got.status, got.body)
		}
		// The new kid refetches the keys at most every 10s: poll until
		// it verifies.
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := call(rotated)
			if got.status == http.StatusOK {
				break
			}
			if got.status != http.StatusUnauthorized || !bytes.Contains(got.body, []byte(fmt.Sprintf(`unknown key \"%s\"`, current.ID()))) {
				t.Fatalf("a token of the new key: got %d %s, want 200 or 401 unknown key", got.status, got.body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("a token of the new key %s was still refused 20s after the rotation: %s", current.ID(), got.body)
			}
			time.Sleep(250 * time.Millisecond)
		}
		var c createdTask
		api(t, base, rotated, "POST", "/tasks", map[string]any{"taskType": "resize", "entityType": "image"}).
			want(t, "create with a new-key token", http.StatusCreated, &c)
		if got := call(tok["alice"]); got.status != http.StatusOK {
			t.Errorf("alice's first token after the rotation: got %d %s, want 200", got.status, got.body)
		}
	})
}
