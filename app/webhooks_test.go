package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/webhook"
)

// TestWebhookEndToEnd: a served app with a webhook secret refuses a
// loopback callbackUrl its allow-list does not cover, and POSTs a task that
// the built-in worker completes to an allowed one, signed with the tenant's
// key.
func TestWebhookEndToEnd(t *testing.T) {
	ctx := context.Background()
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	defer recv.Close()
	dir := t.TempDir()
	cfg := app.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"),
		PollInterval: 50 * time.Millisecond, Logger: quiet(), WebhookSecret: "e2e-secret", WebhookAllow: "127.0.0.1"}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(runCtx) }()
	defer func() { stop(); <-ran }()

	_, _, err = a.Service().Create(ctx, operations.CreateRequest{TenantID: "acme",
		Input: commonops.CreateInput{TaskType: "noop", EntityType: "x", CallbackURL: ptr("http://[::1]:9/")}})
	if commonops.ErrorCode(err) != commonops.EINVALID {
		t.Fatalf("create with a loopback callbackUrl outside the allow-list: got %v, want EINVALID", err)
	}
	c, _, err := a.Service().Create(ctx, operations.CreateRequest{TenantID: "acme",
		Input: commonops.CreateInput{TaskType: "noop", EntityType: "x", CallbackURL: ptr(recv.URL + "/hook")}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var r *http.Request
	select {
	case r = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook within 20s")
	}
	body := <-bodies
	if !webhook.Verify(webhook.TenantKey("e2e-secret", "acme"), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Minute, time.Now()) {
		t.Fatalf("signature %q does not verify with acme's key", r.Header.Get(webhook.HeaderSignature))
	}
	var ev struct {
		Type string
		Data commonops.Task
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != commonops.TopicCompleted || ev.Data.ID != c.Task.ID || ev.Data.Status != commonops.StatusCompleted {
		t.Fatalf("event: got %s of %s (%s), want completed of %s", ev.Type, ev.Data.ID, ev.Data.Status, c.Task.ID)
	}
	// The receiver answered before the attempt was recorded: wait for the
	// counter, then the backlog has nothing left.
	base := "http://" + a.Addr()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, base, `commonops_webhook_attempts_total{outcome="delivered"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("commonops_webhook_attempts_total{outcome=\"delivered\"}: got %v, want 1", metric(t, base, `commonops_webhook_attempts_total{outcome="delivered"}`))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := metric(t, base, "commonops_webhook_delivery_seconds_count"); n != 1 {
		t.Errorf("commonops_webhook_delivery_seconds_count: got %v, want 1", n)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	scrape, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(scrape, []byte("\ncommonops_webhook_pending 0\n")) {
		t.Errorf("/metrics: no commonops_webhook_pending 0 once delivered")
	}
}
