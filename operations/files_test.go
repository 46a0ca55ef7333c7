package operations_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/s3test"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// TestAllowPut: an upload URL works for its input while the task awaits
// the upload, for its output while its attempt runs, and never for a key
// no URL is signed for.
func TestAllowPut(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := create(t, svc, commonops.CreateInput{FileName: ptr("in.csv")})
		in := objectstore.InputKey(tk.ID, "in.csv")
		if err := svc.AllowPut(ctx, in); err != nil {
			t.Fatalf("AllowPut of the input while awaiting: got %v, want nil", err)
		}
		wantErr(t, svc.AllowPut(ctx, objectstore.InputKey(tk.ID, "other.csv")), commonops.ECONFLICT, "")
		put(t, svc, in, 2)
		if _, err := svc.ConfirmUpload(ctx, tenant, tk.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, svc.AllowPut(ctx, in), commonops.ECONFLICT, "")

		claim(t, svc, tk.ID)
		u, err := svc.OutputURL(ctx, tenant, tk.ID, ptr(1), "out.csv", "")
		if err != nil {
			t.Fatal(err)
		}
		out := objectstore.AttemptOutputKey(tk.ID, 1, "out.csv")
		if !strings.Contains(u.URL, "/"+out+"?") {
			t.Errorf("got output URL %s, want one for %s", u.URL, out)
		}
		if err := svc.AllowPut(ctx, out); err != nil {
			t.Errorf("AllowPut of the running attempt's output: got %v, want nil", err)
		}
		wantErr(t, svc.AllowPut(ctx, objectstore.AttemptOutputKey(tk.ID, 2, "out.csv")), commonops.ECONFLICT, "")
		wantErr(t, svc.AllowPut(ctx, objectstore.OutputKey(tk.ID, "out.csv")), commonops.EFORBIDDEN, "")
		wantErr(t, svc.AllowPut(ctx, objectstore.ErrorsKey(tk.ID)), commonops.EFORBIDDEN, "")
		wantErr(t, svc.AllowPut(ctx, "elsewhere/file.csv"), commonops.EFORBIDDEN, "")
		wantErr(t, svc.AllowPut(ctx, objectstore.InputKey("no-such-task", "in.csv")), commonops.ENOTFOUND, "")
		if _, err := svc.Progress(ctx, tenant, tk.ID, commonops.Progress{Attempt: ptr(1), Status: ptr(commonops.StatusCompleted)}); err != nil {
			t.Fatal(err)
		}
		wantErr(t, svc.AllowPut(ctx, out), commonops.ECONFLICT, "")
	})
}

// TestDownloadRefusesChangedFile: a file written again after the task
// confirmed it (here through Create, as the built-in worker writes) is
// refused on download with ECONFLICT rather than served.
func TestDownloadRefusesChangedFile(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := create(t, svc, commonops.CreateInput{FileName: ptr("in.csv")})
		put(t, svc, objectstore.InputKey(tk.ID, "in.csv"), 2)
		if _, err := svc.ConfirmUpload(ctx, tenant, tk.ID); err != nil {
			t.Fatal(err)
		}
		claim(t, svc, tk.ID)
		put(t, svc, objectstore.OutputKey(tk.ID, "out.csv"), 3)
		if _, err := svc.Progress(ctx, tenant, tk.ID, commonops.Progress{Attempt: ptr(1), Status: ptr(commonops.StatusCompleted), OutputFileName: ptr("out.csv")}); err != nil {
			t.Fatal(err)
		}
		for _, which := range []string{operations.FileInput, operations.FileOutput} {
			if _, err := svc.DownloadURL(ctx, tenant, tk.ID, which); err != nil {
				t.Fatalf("DownloadURL %s before any change: %v", which, err)
			}
		}
		put(t, svc, objectstore.InputKey(tk.ID, "in.csv"), 2)
		put(t, svc, objectstore.OutputKey(tk.ID, "out.csv"), 3)
		for _, which := range []string{operations.FileInput, operations.FileOutput} {
			_, err := svc.DownloadURL(ctx, tenant, tk.ID, which)
			wantErr(t, err, commonops.ECONFLICT, "")
			if !strings.Contains(commonops.ErrorMessage(err), "changed after it was confirmed") {
				t.Errorf("DownloadURL %s: got message %q, want it to say the file changed after it was confirmed", which, commonops.ErrorMessage(err))
			}
		}
	})
}

// TestOverwriteOnS3NeverServed: a pre-signed S3 PUT cannot be revoked, so
// a second PUT to the input's or the output's URL after confirmation is
// stored; the download then answers ECONFLICT instead of serving it.
func TestOverwriteOnS3NeverServed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t)
	objects, err := objectstore.NewS3(ctx, objectstore.S3Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	testdb.Each(t, func(t *testing.T, st store.Store) {
		t.Parallel()
		svc := &operations.Service{Store: st, Objects: objects, Now: func() time.Time { return now }, Rand: func() float64 { return 0 }}
		c, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: tenant, Requester: "alice",
			Input: commonops.CreateInput{TaskType: "import", EntityType: "product", FileName: ptr("in.csv"), ContentType: ptr("text/csv")}})
		if err != nil {
			t.Fatal(err)
		}
		id := c.Task.ID
		upload(t, *c.UploadURL, c.UploadHeaders, "first input")
		if _, err := svc.ConfirmUpload(ctx, tenant, id); err != nil {
			t.Fatal(err)
		}
		if got := fetch(t, svc, id, operations.FileInput); got != "first input" {
			t.Errorf("input download: got %q, want %q", got, "first input")
		}
		upload(t, *c.UploadURL, c.UploadHeaders, "other input")
		_, err = svc.DownloadURL(ctx, tenant, id, operations.FileInput)
		wantErr(t, err, commonops.ECONFLICT, "")

		claim(t, svc, id)
		u, err := svc.OutputURL(ctx, tenant, id, ptr(1), "out.csv", "text/csv")
		if err != nil {
			t.Fatal(err)
		}
		upload(t, u.URL, u.Headers, "first output")
		if _, err := svc.Progress(ctx, tenant, id, commonops.Progress{Attempt: ptr(1), Status: ptr(commonops.StatusCompleted), OutputFileName: ptr("out.csv")}); err != nil {
			t.Fatal(err)
		}
		if got := fetch(t, svc, id, operations.FileOutput); got != "first output" {
			t.Errorf("output download: got %q, want %q", got, "first output")
		}
		upload(t, u.URL, u.Headers, "other output")
		_, err = svc.DownloadURL(ctx, tenant, id, operations.FileOutput)
		wantErr(t, err, commonops.ECONFLICT, "")
	})
}

// upload PUTs body to a pre-signed URL, which must take it.
func upload(t *testing.T, url string, headers map[string]string, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT: got %d %s, want 200", resp.StatusCode, b)
	}
}

// fetch downloads a task's file through its download URL.
func fetch(t *testing.T, svc *operations.Service, id, which string) string {
	t.Helper()
	d, err := svc.DownloadURL(context.Background(), tenant, id, which)
	if err != nil {
		t.Fatalf("DownloadURL %s: %v", which, err)
	}
	resp, err := http.Get(d.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the %s: got %d %s, want 200", which, resp.StatusCode, b)
	}
	return string(b)
}

// TestDownloadReportFiles: an import's results.csv and unprocessed file
// download under their names once the worker wrote them, are ENOTFOUND
// before, and no upload URL may write them.
func TestDownloadReportFiles(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, svc *operations.Service) {
		ctx := context.Background()
		tk := create(t, svc, commonops.CreateInput{FileName: ptr("in.csv")})
		for _, tc := range []struct{ which, key, name string }{
			{operations.FileResults, objectstore.ReportKey(tk.ID, "results.csv"), "results.csv"},
			{operations.FileUnprocessed, objectstore.ReportKey(tk.ID, "unprocessed-in.csv"), "unprocessed-in.csv"},
		} {
			t.Run(tc.which, func(t *testing.T) {
				_, err := svc.DownloadURL(ctx, tenant, tk.ID, tc.which)
				wantErr(t, err, commonops.ENOTFOUND, "")
				wantErr(t, svc.AllowPut(ctx, tc.key), commonops.EFORBIDDEN, "")
				put(t, svc, tc.key, 5)
				d, err := svc.DownloadURL(ctx, tenant, tk.ID, tc.which)
				if err != nil {
					t.Fatalf("DownloadURL %s: %v", tc.which, err)
				}
				if d.FileName != tc.name {
					t.Errorf("got file name %q, want %q", d.FileName, tc.name)
				}
			})
		}
	})
}
