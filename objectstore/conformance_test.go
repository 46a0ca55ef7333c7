package objectstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/objectstore"
)

// harness is what the conformance suite needs to know of a store.
type harness struct {
	// open returns a fresh, empty store, private to the test.
	open func(t *testing.T) objectstore.Store
	// sigParam is the query parameter that carries a URL's signature.
	sigParam string
	// bigSize is the size of the streaming test object: several parts on
	// S3.
	bigSize int64
}

// testStore runs the behaviour every Store must have, as a client and the
// service see it: real URLs fetched with plain net/http.
func testStore(t *testing.T, h harness) {
	t.Run("PresignedRoundTrip", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		key := objectstore.InputKey(uuid.NewString(), "données.csv")
		want := randomBytes(300_000)
		put, err := s.PresignPut(ctx, key, objectstore.PutOptions{ContentType: "text/csv", MaxSize: 1 << 20, Expires: time.Minute})
		if err != nil {
			t.Fatalf("PresignPut: %v", err)
		}
		if put.Method != http.MethodPut {
			t.Errorf("got upload method %s, want PUT", put.Method)
		}
		if left := time.Until(put.ExpiresAt); left <= 0 || left > time.Minute+time.Second {
			t.Errorf("got upload expiry in %s, want within a minute", left)
		}
		if resp := do(t, put.Method, put.URL, put.Headers, want); resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT to the upload URL: got %d %s, want 200", resp.StatusCode, resp.body)
		}
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat after upload: %v", err)
		}
		if info.Size != int64(len(want)) || info.Key != key {
			t.Errorf("got Stat %+v, want key %s size %d", info, key, len(want))
		}
		if age := time.Since(info.LastModified); age < -time.Minute || age > time.Minute {
			t.Errorf("got LastModified %s, want about now", info.LastModified)
		}

		get, err := s.PresignGet(ctx, key, objectstore.GetOptions{FileName: "Rapport été 2024.csv"})
		if err != nil {
			t.Fatalf("PresignGet: %v", err)
		}
		resp := do(t, get.Method, get.URL, get.Headers, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET the download URL: got %d %s, want 200", resp.StatusCode, resp.body)
		}
		if !bytes.Equal(resp.body, want) {
			t.Errorf("got %d bytes back, want the %d uploaded", len(resp.body), len(want))
		}
		cd := resp.Header.Get("Content-Disposition")
		if wantCD := "filename*=UTF-8''Rapport%20%C3%A9t%C3%A9%202024.csv"; !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, wantCD) {
			t.Errorf("got Content-Disposition %q, want an attachment with %s", cd, wantCD)
		}

		r, err := s.Open(ctx, key)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer r.Close()
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
			t.Errorf("Open: got %d bytes, err %v; want the %d uploaded", len(got), err, len(want))
		}
	})

	t.Run("TamperedURLForbidden", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		id := uuid.NewString()
		key, other := objectstore.OutputKey(id, "out.csv"), objectstore.OutputKey(id, "other.csv")
		write(t, s, key, []byte("secret data"))
		write(t, s, other, []byte("other data"))
		get, err := s.PresignGet(ctx, key, objectstore.GetOptions{FileName: "out.csv"})
		if err != nil {
			t.Fatal(err)
		}
		put, err := s.PresignPut(ctx, key, objectstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, method, url string
		}{
			{"changed signature", "GET", withParam(t, get.URL, h.sigParam, func(v string) string { return flip(v) })},
			{"other key", "GET", strings.Replace(get.URL, "out.csv", "other.csv", 1)},
			{"upload URL used to download", "GET", put.URL},
			{"download URL used to upload", "PUT", get.URL},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.url == get.URL && tt.method == "GET" {
					t.Fatal("the URL was not changed")
				}
				resp := do(t, tt.method, tt.url, nil, []byte("x"))
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("got %d %s, want 403", resp.StatusCode, resp.body)
				}
			})
		}
		if got := read(t, s, key); string(got) != "secret data" {
			t.Errorf("after the refused PUT the object holds %q, want it unchanged", got)
		}
	})

	t.Run("ExpiredURLForbidden", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		key := objectstore.OutputKey(uuid.NewString(), "out.csv")
		write(t, s, key, []byte("data"))
		// Signed first, the PUT URL expires no later than the GET URL.
		put, err := s.PresignPut(ctx, key, objectstore.PutOptions{Expires: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		get, err := s.PresignGet(ctx, key, objectstore.GetOptions{Expires: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// Poll the download URL until it is refused; signatures date URLs
		// to the second, so allow a few past ExpiresAt.
		deadline := get.ExpiresAt.Add(3 * time.Second)
		for {
			resp := do(t, "GET", get.URL, nil, nil)
			if resp.StatusCode == http.StatusForbidden {
				break
			}
			if resp.StatusCode != http.StatusOK || time.Now().After(deadline) {
				t.Fatalf("GET %s after its expiry at %s: got %d %s, want 403", time.Since(get.ExpiresAt), get.ExpiresAt, resp.StatusCode, resp.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if resp := do(t, "PUT", put.URL, nil, []byte("new")); resp.StatusCode != http.StatusForbidden {
			t.Errorf("PUT with an expired URL: got %d %s, want 403", resp.StatusCode, resp.body)
		}
		if got := read(t, s, key); string(got) != "data" {
			t.Errorf("got object %q after an expired PUT, want %q", got, "data")
		}
	})

	t.Run("MissingKeyNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		key := objectstore.InputKey(uuid.NewString(), "never.csv")
		if _, err := s.Stat(ctx, key); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Errorf("Stat: got %v, want ENOTFOUND", err)
		}
		if _, err := s.Open(ctx, key); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Errorf("Open: got %v, want ENOTFOUND", err)
		}
		get, err := s.PresignGet(ctx, key, objectstore.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if resp := do(t, "GET", get.URL, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET: got %d, want 404", resp.StatusCode)
		}
	})

	t.Run("InvalidKeyRefused", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		for _, key := range []string{"", "../x", "/etc/passwd", "a//b", "a/./b", "a/../../b", `a\b`, "a/b/", "a\x00b"} {
			if _, err := s.PresignPut(ctx, key, objectstore.PutOptions{}); commonops.ErrorCode(err) != commonops.EINVALID {
				t.Errorf("PresignPut(%q): got %v, want EINVALID", key, err)
			}
			if _, err := s.Stat(ctx, key); commonops.ErrorCode(err) != commonops.EINVALID {
				t.Errorf("Stat(%q): got %v, want EINVALID", key, err)
			}
		}
	})

	t.Run("StreamingRoundTrip", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		key := objectstore.OutputKey(uuid.NewString(), "big.bin")
		w, err := s.Create(ctx, key, "application/octet-stream")
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		src := newPattern(h.bigSize)
		sum := sha256.New()
		if _, err := io.CopyBuffer(w, io.TeeReader(src, sum), make([]byte, 100_000)); err != nil {
			t.Fatalf("write: %v", err)
		}
		if _, err := s.Stat(ctx, key); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Errorf("Stat before Close: got %v, want ENOTFOUND (no partial object)", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		info, err := s.Stat(ctx, key)
		if err != nil || info.Size != h.bigSize {
			t.Fatalf("Stat: got %+v, %v; want size %d", info, err, h.bigSize)
		}
		r, err := s.Open(ctx, key)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer r.Close()
		back := sha256.New()
		n, err := io.Copy(back, r)
		if err != nil || n != h.bigSize || !bytes.Equal(back.Sum(nil), sum.Sum(nil)) {
			t.Errorf("read back %d bytes (err %v), hash equal %v; want %d bytes, the same hash", n, err, bytes.Equal(back.Sum(nil), sum.Sum(nil)), h.bigSize)
		}
	})

	t.Run("ETagChangesOnOverwrite", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		key := objectstore.AttemptOutputKey(uuid.NewString(), 2, "out.csv")
		put, err := s.PresignPut(ctx, key, objectstore.PutOptions{Expires: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		// The same size twice: only the ETag tells the two objects apart.
		if resp := do(t, put.Method, put.URL, put.Headers, []byte("first")); resp.StatusCode != http.StatusOK {
			t.Fatalf("first PUT: got %d %s, want 200", resp.StatusCode, resp.body)
		}
		first, err := s.Stat(ctx, key)
		if err != nil || first.ETag == "" {
			t.Fatalf("Stat: got %+v, %v; want an ETag", first, err)
		}
		if again, err := s.Stat(ctx, key); err != nil || again.ETag != first.ETag {
			t.Errorf("Stat again: got ETag %q (err %v), want %q unchanged", again.ETag, err, first.ETag)
		}
		if resp := do(t, put.Method, put.URL, put.Headers, []byte("again")); resp.StatusCode != http.StatusOK {
			t.Fatalf("second PUT: got %d %s, want 200", resp.StatusCode, resp.body)
		}
		second, err := s.Stat(ctx, key)
		if err != nil || second.ETag == "" || second.ETag == first.ETag {
			t.Errorf("Stat after overwrite: got ETag %q (err %v), want one other than %q", second.ETag, err, first.ETag)
		}
	})

	t.Run("AbortStoresNothing", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		key := objectstore.OutputKey(uuid.NewString(), "aborted.csv")
		w, err := s.Create(ctx, key, "text/csv")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(randomBytes(10_000)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		if _, err := s.Stat(ctx, key); commonops.ErrorCode(err) != commonops.ENOTFOUND {
			t.Errorf("Stat after Abort: got %v, want ENOTFOUND", err)
		}
	})

	t.Run("DeletePrefix", func(t *testing.T) {
		t.Parallel()
		s, ctx := h.open(t), context.Background()
		a, b := uuid.NewString(), uuid.NewString()
		gone := []string{objectstore.InputKey(a, "in.csv"), objectstore.OutputKey(a, "out.csv"), objectstore.ErrorsKey(a)}
		kept := []string{objectstore.InputKey(b, "in.csv"), objectstore.ErrorsKey(b)}
		for _, k := range append(gone, kept...) {
			write(t, s, k, []byte(k))
		}
		if err := s.DeletePrefix(ctx, objectstore.TaskPrefix(a)); err != nil {
			t.Fatalf("DeletePrefix: %v", err)
		}
		for _, k := range gone {
			if _, err := s.Stat(ctx, k); commonops.ErrorCode(err) != commonops.ENOTFOUND {
				t.Errorf("Stat(%s) after delete: got %v, want ENOTFOUND", k, err)
			}
		}
		for _, k := range kept {
			if got := read(t, s, k); string(got) != k {
				t.Errorf("got %q in %s, want it kept", got, k)
			}
		}
		if err := s.DeletePrefix(ctx, objectstore.TaskPrefix(a)); err != nil {
			t.Errorf("DeletePrefix of nothing: got %v, want nil", err)
		}
		if err := s.DeletePrefix(ctx, ""); commonops.ErrorCode(err) != commonops.EINVALID {
			t.Errorf("DeletePrefix(\"\"): got %v, want EINVALID", err)
		}
	})

	t.Run("Check", func(t *testing.T) {
		t.Parallel()
		if err := h.open(t).Check(context.Background()); err != nil {
			t.Errorf("Check: got %v, want nil", err)
		}
	})
}

// response is an HTTP answer with its body read.
type response struct {
	*http.Response
	body []byte
}

// do sends one request as a client would, with plain net/http.
func do(t testing.TB, method, rawURL string, headers map[string]string, body []byte) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, r)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, rawURL, err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer to %s %s: %v", method, rawURL, err)
	}
	return response{resp, b}
}

func write(t testing.TB, s objectstore.Store, key string, data []byte) {
	t.Helper()
	w, err := s.Create(context.Background(), key, "application/octet-stream")
	if err != nil {
		t.Fatalf("Create %s: %v", key, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close %s: %v", key, err)
	}
}

func read(t testing.TB, s objectstore.Store, key string) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// withParam returns rawURL with query parameter name changed by f.
func withParam(t testing.TB, rawURL, name string, f func(string) string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if !q.Has(name) {
		t.Fatalf("URL %s has no parameter %s", rawURL, name)
	}
	q.Set(name, f(q.Get(name)))
	u.RawQuery = q.Encode()
	return u.String()
}

// flip changes the first character of s to another valid one.
func flip(s string) string {
	if s == "" {
		return "A"
	}
	c := byte('A')
	if s[0] == 'A' {
		c = 'B'
	}
	return string(c) + s[1:]
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// pattern is a reader of n pseudo-random bytes that holds no more than its
// state in memory.
type pattern struct {
	r    *rand.ChaCha8
	left int64
}

func newPattern(n int64) *pattern { return &pattern{r: rand.NewChaCha8([32]byte{2}), left: n} }

func (p *pattern) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, _ := p.r.Read(b)
	p.left -= int64(n)
	return n, nil
}
