package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/cors"

	"github.com/commonops/commonops/internal/s3test"
	"github.com/commonops/commonops/objectstore"
)

// The console's browser uploads to S3: the page is at http://localhost:PORT
// and the pre-signed URLs point at the gateway, http://127.0.0.1:PORT2,
// another origin. versitygw checks the SigV4 signature of the PUT and
// answers the browser's CORS preflight from the bucket's CORS rule, as S3
// does.

// s3Console is commonops on S3 (and its own SQLite file) with the console
// at consoleOrigin, and a browser on it.
type s3Console struct {
	in     *instance
	b      *browser
	s3     s3test.Server
	client *minio.Client
	origin string
}

// startS3Console starts commonops on a fresh bucket; with corsOption it
// sets --s3-cors-origins to the console's origin, so the service writes
// the bucket's CORS rule at start.
func startS3Console(t *testing.T, corsOption bool) *s3Console {
	t.Helper()
	s3 := s3test.Start(t)
	client, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	// The console's origin must be known before the start, for the rule.
	port := freePort(t)
	origin := fmt.Sprintf("http://localhost:%d", port)
	env := s3Env(s3, map[string]string{"COMMONOPS_ADDR": fmt.Sprintf("127.0.0.1:%d", port)})
	if corsOption {
		env["COMMONOPS_S3_CORS_ORIGINS"] = origin
	}
	in := start(t, env)
	b := newBrowser(t, in.base)
	if b.base != origin {
		t.Fatalf("browser at %s, want the console at %s", b.base, origin)
	}
	return &s3Console{in: in, b: b, s3: s3, client: client, origin: origin}
}

// inputFile writes a CSV of about size bytes and returns its path and
// contents.
func inputFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("sku,name\n")
	for i := 0; buf.Len() < size; i++ {
		fmt.Fprintf(&buf, "SKU-%07d,product number %d\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "products.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, buf.Bytes()
}

// fillUpload fills the new-task form for a noop task (which completes as
// soon as its input has arrived) with the file, without submitting it. The
// upload text's every change (each a new text node, however the observer's
// records are batched) is kept in sessionStorage, which outlives the
// navigation to the task page that follows a successful upload.
func (c *s3Console) fillUpload(file string) {
	c.b.t.Helper()
	c.b.run(chromedp.Navigate(c.b.base+"/console/new"), chromedp.WaitVisible("#n-type"),
		chromedp.SendKeys("#n-type", "noop"), chromedp.SendKeys("#n-entity", "product"),
		chromedp.SetUploadFiles("#n-file", []string{file}),
		chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('uploadText', '[]');
new MutationObserver((records) => {
  const seen = JSON.parse(sessionStorage.getItem('uploadText'));
  for (const r of records) for (const n of r.addedNodes) seen.push(n.textContent);
  sessionStorage.setItem('uploadText', JSON.stringify(seen));
}).observe(document.querySelector('#n-upload-text'), {childList: true})`))
}

// uploadTexts is what the upload text said, in order, since fillUpload.
func (c *s3Console) uploadTexts() []string {
	c.b.t.Helper()
	return get(c.b, chromedp.Evaluate[[]string](`JSON.parse(sessionStorage.getItem('uploadText') || '[]')`))
}

// stored is the task's input as the bucket holds it.
func (c *s3Console) stored(t *testing.T, id, name string) []byte {
	t.Helper()
	obj, err := c.client.GetObject(context.Background(), c.s3.Bucket, objectstore.InputKey(id, name), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read the input of %s from the bucket: %v", id, err)
	}
	return b
}

// downloaded is the task's input fetched through the API's download URL.
func (c *s3Console) downloaded(t *testing.T, id string) []byte {
	t.Helper()
	var d struct {
		DownloadURL string `json:"downloadUrl"`
	}
	apiCall(t, c.in.base, "GET", "/tasks/"+id+"/download?file=input", nil, http.StatusOK, &d)
	return fetch(t, d.DownloadURL, "the input of "+id)
}

// checkArrived checks that the page reported the upload to 100%, that the
// task completed, and that the bucket and the download hold the file.
func (c *s3Console) checkArrived(t *testing.T, id string, want []byte) {
	t.Helper()
	texts := c.uploadTexts()
	full := fmt.Sprintf("100%% (%d of %d bytes)", len(want), len(want))
	if len(texts) < 2 || texts[len(texts)-2] != full || texts[len(texts)-1] != "100%: uploaded" {
		t.Fatalf("upload progress: got %q, want it to end with %q and %q", texts, full, "100%: uploaded")
	}
	// The task runs once its input is confirmed; on a loaded machine that
	// can take a while, so the API is asked first, with a deadline of its
	// own, and then the page, which follows the task's events.
	var got task
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		apiCall(t, c.in.base, "GET", "/tasks/"+id, nil, http.StatusOK, &got)
		if got.Status == "completed" || time.Now().After(deadline) {
			break
		}
	}
	if got.Status != "completed" || got.UploadStatus != "uploaded" {
		t.Fatalf("task %s: got %s with upload %s, want completed with upload uploaded", id, got.Status, got.UploadStatus)
	}
	c.b.waitJS(`document.querySelector('#task').dataset.status === 'completed'`)
	if b := c.stored(t, id, "products.csv"); !bytes.Equal(b, want) {
		t.Fatalf("the bucket's input of %s: got %d bytes, want the file's %d", id, len(b), len(want))
	}
	if b := c.downloaded(t, id); !bytes.Equal(b, want) {
		t.Fatalf("the downloaded input of %s: got %d bytes, want the file's %d", id, len(b), len(want))
	}
}

// TestConsoleS3UploadInBrowser serves on S3 with --s3-cors-origins: the
// page's CSP lets it connect to the gateway, the service has written the
// bucket's CORS rule, and a file of some MB goes from the browser straight
// to the bucket while the progress bar moves to 100%; the task completes.
func TestConsoleS3UploadInBrowser(t *testing.T) {
	t.Parallel()
	c := startS3Console(t, true)
	file, want := inputFile(t, 4<<20)
	c.b.run(chromedp.Navigate(c.b.base + "/console/new"))
	csp := get(c.b, chromedp.Evaluate[string](`fetch(location.href).then(r => r.headers.get('Content-Security-Policy'))`, chromedp.EvalAwaitPromise))
	if want := fmt.Sprintf("connect-src 'self' http://%s/%s/;", c.s3.Endpoint, c.s3.Bucket); !strings.Contains(csp, want) {
		t.Fatalf("the console's CSP: got %q, want %q", csp, want)
	}

	// Uploads to the gateway are slowed to 1 MB/s, so the bar is seen
	// moving (and shot) on its way.
	c.b.run(chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{URLPattern: "http://" + c.s3.Endpoint + "/*", UploadThroughput: 1 << 20, DownloadThroughput: -1}},
		})
		return chromedp.Void{}, err
	}))
	c.fillUpload(file)
	c.b.shoot("new-s3")
	c.b.run(chromedp.Click(`#new-task button[type=submit]`))
	c.b.waitJS(`document.querySelector('#n-upload').value >= 10`)
	c.b.shoot("new-s3-uploading")
	c.b.waitJS(`!!document.querySelector('#task') || !document.querySelector('#n-form-error').hidden`)
	if msg := get(c.b, chromedp.Evaluate[string](`document.querySelector('#task') ? '' : document.querySelector('#n-form-error').textContent`)); msg != "" {
		t.Fatalf("upload: the form says %q", msg)
	}
	id := get(c.b, chromedp.AttributeValue("#task", "data-task")).Value
	c.checkArrived(t, id, want)
	c.b.shoot("task-s3-upload")
}

// TestConsoleS3UploadWithoutCORS serves on S3 without a CORS rule on the
// bucket: the browser refuses the upload, the page says what an operator
// should check, and the task waits for its file. Once the operator has set
// the rule by hand (as the README shows), the retry on the same page
// uploads to the same URL, and the task completes.
func TestConsoleS3UploadWithoutCORS(t *testing.T) {
	t.Parallel()
	c := startS3Console(t, false)
	file, want := inputFile(t, 2<<20)
	c.fillUpload(file)
	c.b.run(chromedp.Click(`#new-task button[type=submit]`))
	c.b.waitJS(`!document.querySelector('#n-form-error').hidden`)
	msg := get(c.b, chromedp.Text("#n-form-error"))
	for _, w := range []string{
		"could not send the file to http://" + c.s3.Endpoint,
		"the bucket's CORS rule allows PUT from " + c.origin,
		"COMMONOPS_S3_CORS_ORIGINS",
		"was created and waits for its file: retry the upload, or open the task to cancel it",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("the page says %q, want it to say %q", msg, w)
		}
	}
	if got := get(c.b, chromedp.Text(`#new-task button[type=submit]`)); got != "Retry the upload" {
		t.Errorf("submit button: got %q, want %q", got, "Retry the upload")
	}
	c.b.shoot("new-s3-upload-refused")

	href := get(c.b, chromedp.AttributeValue("#n-form-error a", "href")).Value
	id := strings.TrimPrefix(href, "/console/tasks/")
	var waiting task
	apiCall(t, c.in.base, "GET", "/tasks/"+id, nil, http.StatusOK, &waiting)
	if waiting.Status != "pending" || waiting.UploadStatus != "awaiting" {
		t.Fatalf("task %s after the refused upload: got %s with upload %s, want pending, awaiting its upload", id, waiting.Status, waiting.UploadStatus)
	}
	if _, err := c.client.StatObject(context.Background(), c.s3.Bucket, objectstore.InputKey(id, "products.csv"), minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("the bucket after the refused upload: got %v, want no input object", err)
	}

	rule := cors.Rule{AllowedOrigin: []string{c.origin}, AllowedMethod: []string{"PUT"}, AllowedHeader: []string{"Content-Type"}, ExposeHeader: []string{"ETag"}}
	if err := c.client.SetBucketCors(context.Background(), c.s3.Bucket, cors.NewConfig([]cors.Rule{rule})); err != nil {
		t.Fatal(err)
	}
	c.b.run(chromedp.Click(`#new-task button[type=submit]`))
	c.b.waitJS(fmt.Sprintf(`document.querySelector('#task') && document.querySelector('#task').dataset.task === %q`, id))
	c.checkArrived(t, id, want)
	var all struct {
		Total int `json:"total"`
	}
	apiCall(t, c.in.base, "GET", "/tasks", nil, http.StatusOK, &all)
	if all.Total != 1 {
		t.Fatalf("tasks after the retry: got %d, want the one task", all.Total)
	}
}
