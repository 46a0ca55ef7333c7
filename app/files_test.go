package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/operations"
)

// TestFinishedUploadsStayPut: once an upload is confirmed, or the attempt
// that was given an output URL has ended, the local store refuses a second
// PUT to the still valid URL (409), and the downloads serve what was
// confirmed.
func TestFinishedUploadsStayPut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", Roles: app.RoleAPI, DataDir: dir,
		DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	svc := a.Service()
	tenant := commonops.DefaultTenant

	c, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant,
		Input: commonops.CreateInput{TaskType: "import", EntityType: "product", FileName: ptr("in.csv")}})
	if err != nil {
		t.Fatal(err)
	}
	id := c.Task.ID
	if got := send(t, "PUT", *c.UploadURL, "first input"); got.status != http.StatusOK {
		t.Fatalf("PUT the input: got %d %s, want 200", got.status, got.body)
	}
	if got := send(t, "PUT", *c.UploadURL, "replaced input"); got.status != http.StatusConflict {
		t.Errorf("PUT the input again after it was confirmed: got %d %s, want 409", got.status, got.body)
	}
	if got := download(t, svc, id, operations.FileInput); got != "first input" {
		t.Errorf("input download: got %q, want %q", got, "first input")
	}

	if _, err := svc.Claim(ctx, tenant, id, "w", 0); err != nil {
		t.Fatal(err)
	}
	u, err := svc.OutputURL(ctx, tenant, id, ptr(1), "out.csv", "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	if got := send(t, "PUT", u.URL, "first output"); got.status != http.StatusOK {
		t.Fatalf("PUT the output: got %d %s, want 200", got.status, got.body)
	}
	done := commonops.StatusCompleted
	if _, err := svc.Progress(ctx, tenant, id, commonops.Progress{Attempt: ptr(1), Status: &done, OutputFileName: ptr("out.csv")}); err != nil {
		t.Fatal(err)
	}
	if got := send(t, "PUT", u.URL, "replaced output"); got.status != http.StatusConflict {
		t.Errorf("PUT the output again after the task completed: got %d %s, want 409", got.status, got.body)
	}
	if got := download(t, svc, id, operations.FileOutput); got != "first output" {
		t.Errorf("output download: got %q, want %q", got, "first output")
	}
}

type answer struct {
	status int
	body   string
}

func send(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

func download(t *testing.T, svc *operations.Service, id, which string) string {
	t.Helper()
	d, err := svc.DownloadURL(context.Background(), commonops.DefaultTenant, id, which)
	if err != nil {
		t.Fatalf("DownloadURL %s: %v", which, err)
	}
	got := send(t, "GET", d.DownloadURL, "")
	if got.status != http.StatusOK {
		t.Fatalf("GET the %s: got %d %s, want 200", which, got.status, got.body)
	}
	return got.body
}

func ptr[T any](v T) *T { return &v }
