package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestFirstAdminKeyAndGatewayMode makes the first admin key with
// `commonops apikey create`, serves in the gateway mode on the same
// database, uses the key to create a worker key, revokes a key with the
// CLI, and greps the logs of the whole run for every secret.
func TestFirstAdminKeyAndGatewayMode(t *testing.T) {
	t.Parallel()
	const secret = "gateway-secret-e2e-9d8c7b6a"
	env := map[string]string{"COMMONOPS_DATA_DIR": t.TempDir(), "COMMONOPS_AUTH": "gateway", "COMMONOPS_GATEWAY_SECRET": secret}
	getenv := func(k string) string { return env[k] }
	cli := func(args ...string) (string, string) {
		t.Helper()
		var out, errs bytes.Buffer
		if err := run(context.Background(), append([]string{"apikey"}, args...), getenv, &out, &errs); err != nil {
			t.Fatalf("apikey %v: %v\n%s", args, err, errs.String())
		}
		return strings.TrimSpace(out.String()), errs.String()
	}
	adminKey, note := cli("create", "--tenant", "acme", "--roles", "admin", "--name", "first")
	if !strings.HasPrefix(adminKey, "co_") || !strings.Contains(note, "shown only once") {
		t.Fatalf("apikey create: got %q (%q), want a co_ key and a note", adminKey, note)
	}
	in := start(t, env)
	do := func(method, path, auth string, body any, want int) []byte {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, in.base+"/api/v1/operations"+path, r)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: got %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		return b
	}
	do("GET", "/tasks", "", nil, http.StatusUnauthorized)
	var sub struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := json.Unmarshal(do("POST", "/apikeys", adminKey, map[string]any{"name": "ci", "roles": []string{"submitter"}}, http.StatusCreated), &sub); err != nil {
		t.Fatal(err)
	}
	do("POST", "/tasks", sub.Key, map[string]any{"taskType": "noop", "entityType": "x"}, http.StatusCreated)
	do("POST", "/tasks", adminKey+"x", map[string]any{"taskType": "noop", "entityType": "x"}, http.StatusUnauthorized)

	list, _ := cli("list", "--tenant", "acme")
	if !strings.Contains(list, sub.ID) || !strings.Contains(list, "submitter") {
		t.Errorf("apikey list: got\n%s\nwant the key %s", list, sub.ID)
	}
	if out, _ := cli("revoke", "--tenant", "acme", "--id", sub.ID); !strings.Contains(out, "revoked") {
		t.Errorf("apikey revoke: got %q", out)
	}
	if err := in.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, `"actor":"apikey:`+sub.ID+`"`) || !strings.Contains(logs, `"auth":"gateway"`) {
		t.Errorf("the logs lack the actor apikey:%s or the auth mode:\n%s", sub.ID, logs)
	}
	for _, s := range []string{secret, adminKey, sub.Key, adminKey[strings.LastIndex(adminKey, "_")+1:], sub.Key[strings.LastIndex(sub.Key, "_")+1:]} {
		if strings.Contains(logs, s) || strings.Contains(list, s) {
			t.Errorf("a secret (%s...) is in the logs or the listing", s[:4])
		}
	}
}

// TestOpenAPIWarning checks the loud start-up warning of the none mode on
// a non-loopback address.
func TestOpenAPIWarning(t *testing.T) {
	t.Parallel()
	in := start(t, map[string]string{"COMMONOPS_ADDR": ":0"})
	if err := in.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(in.logs.String(), "THE API IS OPEN") {
		t.Errorf("no open-API warning in:\n%s", in.logs.String())
	}
	quiet := start(t, nil)
	if err := quiet.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if strings.Contains(quiet.logs.String(), "THE API IS OPEN") {
		t.Errorf("open-API warning on loopback")
	}
}
