package objectstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/objectstore"
)

// newLocal starts a local store in a temporary directory, served over real
// HTTP the way the service mounts it.
func newLocal(t testing.TB, cfg objectstore.LocalConfig) *objectstore.Local {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + srv.Listener.Addr().String()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	l, err := objectstore.NewLocal(cfg)
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(objectstore.FilesPath, l.Handler())
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(func() { srv.Close(); l.Close() })
	return l
}

func TestLocal(t *testing.T) {
	t.Parallel()
	testStore(t, harness{
		open:     func(t *testing.T) objectstore.Store { return newLocal(t, objectstore.LocalConfig{}) },
		sigParam: "sig",
		bigSize:  40 << 20,
	})
}

func TestLocalUploadOverLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		storeMax int64 // LocalConfig.MaxSize
		urlMax   int64 // PutOptions.MaxSize
		chunked  bool  // no Content-Length: the limit must hold while streaming
	}{
		{"URL limit, Content-Length", 0, 1000, false},
		{"URL limit, streamed", 0, 1000, true},
		{"store limit over a larger URL limit", 1000, 1 << 20, true},
		{"store limit, no URL limit", 1000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, ctx := newLocal(t, objectstore.LocalConfig{Dir: dir, MaxSize: tt.storeMax}), context.Background()
			key := objectstore.InputKey(uuid.NewString(), "big.csv")
			u, err := l.PresignPut(ctx, key, objectstore.PutOptions{MaxSize: tt.urlMax})
			if err != nil {
				t.Fatal(err)
			}
			// Exactly at the limit passes; one byte more is refused.
			if resp := put(t, u.URL, bytes.NewReader(make([]byte, 1000)), tt.chunked); resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT of 1000 bytes: got %d %s, want 200", resp.StatusCode, resp.body)
			}
			resp := put(t, u.URL, bytes.NewReader(make([]byte, 1001+64<<10)), tt.chunked)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("PUT of 1001 bytes: got %d %s, want 413", resp.StatusCode, resp.body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("got Content-Type %q, want application/problem+json", ct)
			}
			if info, err := l.Stat(ctx, key); err != nil || info.Size != 1000 {
				t.Errorf("got %+v, %v after the refused PUT; want the earlier 1000 bytes kept", info, err)
			}
			assertFiles(t, dir, key)
		})
	}
}

// put uploads body to rawURL, with its length announced or (chunked)
// streamed without one. An announced length goes with "Expect:
// 100-continue", as S3 clients send it: the server refuses an upload over
// its limit without reading it and closes the connection, so a client that
// sent the body at once could see its write reset before it read the 413.
func put(t testing.TB, rawURL string, body io.Reader, chunked bool) response {
	t.Helper()
	if chunked {
		body = struct{ io.Reader }{body} // hides the length from net/http
	}
	req, err := http.NewRequest(http.MethodPut, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if !chunked {
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp, b}
}

// assertFiles checks that dir holds exactly the secret and the given keys:
// no temporary or partial file is left behind.
func assertFiles(t testing.TB, dir string, keys ...string) {
	t.Helper()
	want := map[string]bool{".secret": true}
	for _, k := range keys {
		want[filepath.FromSlash(k)] = true
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !want[rel] {
			t.Errorf("got file %s in the store, want only %v", rel, keys)
		}
		delete(want, rel)
		return nil
	})
	for k := range want {
		t.Errorf("file %s missing from the store", k)
	}
}

func TestLocalExpiredByClock(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Unix())
	l := newLocal(t, objectstore.LocalConfig{Now: func() time.Time { return time.Unix(now.Load(), 0) }})
	ctx := context.Background()
	key := objectstore.OutputKey(uuid.NewString(), "out.csv")
	write(t, l, key, []byte("data"))
	u, err := l.PresignGet(ctx, key, objectstore.GetOptions{Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(now.Load(), 0).Add(time.Hour).UTC(); !u.ExpiresAt.Equal(want) {
		t.Errorf("got ExpiresAt %s, want %s", u.ExpiresAt, want)
	}
	now.Add(3600)
	if resp := do(t, "GET", u.URL, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET at the last second: got %d %s, want 200", resp.StatusCode, resp.body)
	}
	now.Add(1)
	resp := do(t, "GET", u.URL, nil, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET a second after expiry: got %d, want 403", resp.StatusCode)
	}
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(resp.body, &p); err != nil || p.Status != 403 || p.Detail == "" {
		t.Errorf("got problem %s (%v), want status 403 with a detail", resp.body, err)
	}
}

func TestLocalOnUpload(t *testing.T) {
	t.Parallel()
	type call struct {
		key  string
		size int64
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	l := newLocal(t, objectstore.LocalConfig{OnUpload: func(ctx context.Context, info objectstore.Info) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{info.Key, info.Size})
		if info.ETag == "" {
			t.Errorf("OnUpload of %s: got no ETag, want one", info.Key)
		}
	}})
	ctx, id := context.Background(), uuid.NewString()
	in, out := objectstore.InputKey(id, "in.csv"), objectstore.OutputKey(id, "out.csv")
	for _, key := range []string{in, out} {
		u, err := l.PresignPut(ctx, key, objectstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if resp := do(t, "PUT", u.URL, nil, []byte("12345")); resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: got %d, want 200", key, resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != (call{in, 5}) {
		t.Errorf("got OnUpload calls %+v, want one for %s with 5 bytes", calls, in)
	}
}

// TestLocalAllowPut: a signed URL is refused, with AllowPut's code and
// message, once the service says its upload is over, before the body is
// read or, when the upload ended while the body streamed, before the file
// replaces the one kept.
func TestLocalAllowPut(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		closed = map[string]bool{}
		asked  = make(chan string, 1)
	)
	dir := t.TempDir()
	l := newLocal(t, objectstore.LocalConfig{Dir: dir, AllowPut: func(_ context.Context, key string) error {
		mu.Lock()
		defer mu.Unlock()
		select {
		case asked <- key:
		default:
		}
		if closed[key] {
			return commonops.Errorf(commonops.ECONFLICT, "the upload of %s is over", key)
		}
		return nil
	}})
	ctx := context.Background()
	key := objectstore.InputKey(uuid.NewString(), "in.csv")
	u, err := l.PresignPut(ctx, key, objectstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if resp := do(t, "PUT", u.URL, nil, []byte("first")); resp.StatusCode != http.StatusOK {
		t.Fatalf("first PUT: got %d %s, want 200", resp.StatusCode, resp.body)
	}
	<-asked
	mu.Lock()
	closed[key] = true
	mu.Unlock()
	resp := do(t, "PUT", u.URL, nil, []byte("second"))
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(resp.body), "is over") {
		t.Errorf("PUT after the upload ended: got %d %s, want 409 with AllowPut's message", resp.StatusCode, resp.body)
	}
	<-asked
	if got := string(read(t, l, key)); got != "first" {
		t.Errorf("stored file: got %q, want %q", got, "first")
	}

	// The upload ends while the body streams: checked again at the end.
	mu.Lock()
	closed[key] = false
	mu.Unlock()
	pr, pw := io.Pipe()
	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, u.URL, pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	pw.Write([]byte("sec"))
	<-asked // the check before the body
	mu.Lock()
	closed[key] = true
	mu.Unlock()
	pw.Write([]byte("ond"))
	pw.Close()
	if got := <-status; got != http.StatusConflict {
		t.Errorf("PUT whose upload ended while it streamed: got %d, want 409", got)
	}
	if got := string(read(t, l, key)); got != "first" {
		t.Errorf("stored file after the refused upload: got %q, want %q", got, "first")
	}
	assertFiles(t, dir, key)
}

func TestLocalSecretPersists(t *testing.T) {
	t.Parallel()
	dir, ctx := t.TempDir(), context.Background()
	first := newLocal(t, objectstore.LocalConfig{Dir: dir})
	key := objectstore.OutputKey(uuid.NewString(), "out.csv")
	write(t, first, key, []byte("kept"))
	u, err := first.PresignGet(ctx, key, objectstore.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ".secret"))
	if err != nil {
		t.Fatalf("secret file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got secret mode %v, want 0600", fi.Mode().Perm())
	}
	// A restarted store on the same directory (same URL base, as the
	// service would be) honours the URL.
	restarted, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	srv := httptest.NewServer(restarted.Handler())
	defer srv.Close()
	resp := do(t, "GET", rehost(t, u.URL, srv.URL), nil, nil)
	if resp.StatusCode != http.StatusOK || string(resp.body) != "kept" {
		t.Errorf("GET after restart: got %d %q, want 200 %q", resp.StatusCode, resp.body, "kept")
	}
	// A store with another secret refuses it.
	other := newLocal(t, objectstore.LocalConfig{Dir: dir, Secret: bytes.Repeat([]byte("k"), 32)})
	v, _ := other.PresignGet(ctx, key, objectstore.GetOptions{})
	if resp := do(t, "GET", rehost(t, v.URL, srv.URL), nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET signed with another secret: got %d, want 403", resp.StatusCode)
	}
}

// rehost points rawURL at the server at base.
func rehost(t testing.TB, rawURL, base string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = b.Host
	return u.String()
}

func TestLocalGetRangeAndHead(t *testing.T) {
	t.Parallel()
	l, ctx := newLocal(t, objectstore.LocalConfig{}), context.Background()
	key := objectstore.OutputKey(uuid.NewString(), "out.csv")
	data := randomBytes(10_000)
	write(t, l, key, data)
	u, err := l.PresignGet(ctx, key, objectstore.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp := do(t, "GET", u.URL, map[string]string{"Range": "bytes=100-199"}, nil)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(resp.body, data[100:200]) {
		t.Errorf("Range GET: got %d with %d bytes, want 206 with bytes 100-199", resp.StatusCode, len(resp.body))
	}
	resp = do(t, "HEAD", u.URL, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD: got %d, length %d; want 200, %d", resp.StatusCode, resp.ContentLength, len(data))
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="out.csv"; filename*=UTF-8''out.csv` {
		t.Errorf("got Content-Disposition %q, want the key's name", cd)
	}
	if resp := do(t, "POST", u.URL, nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: got %d, want 405", resp.StatusCode)
	}
}

func TestLocalInterruptedUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := httptest.NewUnstartedServer(nil)
	l, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: dir, BaseURL: "http://" + srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	// handled tells when the store's handler has returned, so the check
	// below runs after the server gave up on the broken body.
	handled := make(chan struct{}, 1)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.Handler().ServeHTTP(w, r)
		handled <- struct{}{}
	})
	srv.Start()
	t.Cleanup(func() { srv.Close(); l.Close() })
	ctx := context.Background()
	key := objectstore.InputKey(uuid.NewString(), "in.csv")
	u, err := l.PresignPut(ctx, key, objectstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Announce 1 MB, send 1 KB, then fail: the client hangs up mid-body.
	req, err := http.NewRequest(http.MethodPut, u.URL, io.MultiReader(bytes.NewReader(make([]byte, 1024)), errReader{}))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d for a broken upload, want the request to fail", resp.StatusCode)
	}
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not finish the broken upload within 10s")
	}
	if _, err := l.Stat(ctx, key); commonops.ErrorCode(err) != commonops.ENOTFOUND {
		t.Errorf("Stat after a broken upload: got %v, want ENOTFOUND", err)
	}
	assertFiles(t, dir)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }
