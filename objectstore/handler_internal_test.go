package objectstore

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// outsideData is the content of a file beside the store's directory that
// no request may read or change.
const outsideData = "outside the store"

// jail is a local store whose directory sits in a parent holding one
// sentinel file, to prove that nothing outside the directory is reached.
type jail struct {
	l      *Local
	parent string
}

func newJail(t testing.TB) jail {
	t.Helper()
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "outside.txt"), []byte(outsideData), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(LocalConfig{Dir: filepath.Join(parent, "files"), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return jail{l: l, parent: parent}
}

// check fails unless the parent still holds only the store's directory and
// the untouched sentinel, and the answer leaked neither the sentinel nor the
// secret.
func (j jail) check(t testing.TB, what string, body []byte) {
	t.Helper()
	entries, err := os.ReadDir(j.parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "files" && e.Name() != "outside.txt" {
			t.Fatalf("%s: got %s created outside the store, want nothing", what, e.Name())
		}
	}
	if b, err := os.ReadFile(filepath.Join(j.parent, "outside.txt")); err != nil || string(b) != outsideData {
		t.Fatalf("%s: got the outside file %q (%v), want it unchanged", what, b, err)
	}
	if len(body) > 0 && (bytes.Contains(body, []byte(outsideData)) || bytes.Contains(body, j.l.secret)) {
		t.Fatalf("%s: the answer leaked a file outside the store or the secret: %q", what, body)
	}
}

// signedQuery returns the query of a valid signature of method on key,
// whatever the key: it skips the validation PresignPut does, to prove the
// handler's own.
func (j jail) signedQuery(method, key string) string {
	u := j.l.signedURL(method, key, time.Now().Add(time.Hour).Unix(), 0, "")
	return u[strings.IndexByte(u, '?')+1:]
}

func TestLocalHandlerPathTraversal(t *testing.T) {
	t.Parallel()
	j := newJail(t)
	srv := httptest.NewServer(j.l.Handler())
	defer srv.Close()
	abs := filepath.ToSlash(filepath.Join(j.parent, "outside.txt"))
	tests := []struct {
		name    string
		rawPath string // as sent on the wire
		key     string // as the server decodes it, for the signature
	}{
		{"dot dot", "/files/../outside.txt", "../outside.txt"},
		{"deep dot dot", "/files/tasks/x/../../../outside.txt", "tasks/x/../../../outside.txt"},
		{"encoded dot dot", "/files/%2e%2e/outside.txt", "../outside.txt"},
		{"encoded slash", "/files/tasks/..%2f..%2foutside.txt", "tasks/../../outside.txt"},
		{"absolute", "/files/" + abs, abs},
		{"encoded absolute", "/files/%2F" + strings.TrimPrefix(abs, "/"), abs},
		{"backslash", "/files/tasks%5c..%5c..%5coutside.txt", `tasks\..\..\outside.txt`},
		{"the secret", "/files/.secret", ".secret"},
		{"NUL", "/files/tasks/a%00b", "tasks/a\x00b"},
		{"dot segment", "/files/./outside.txt", "./outside.txt"},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "PUT"} {
			for _, signed := range []bool{false, true} {
				name := tt.name + "/" + method
				if signed {
					name += "/signed"
				}
				t.Run(name, func(t *testing.T) {
					raw := srv.URL + tt.rawPath
					if signed {
						raw += "?" + j.signedQuery(method, tt.key)
					}
					req, err := http.NewRequest(method, raw, strings.NewReader("overwritten"))
					if err != nil {
						t.Fatal(err)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
						t.Errorf("got %d %s, want 400 or 403", resp.StatusCode, body)
					}
					j.check(t, name, body)
				})
			}
		}
	}
}

// TestLocalHandlerSymlinkOutside shows the os.Root at work: even a validly
// signed key cannot follow a link an operator left pointing outside Dir.
func TestLocalHandlerSymlinkOutside(t *testing.T) {
	t.Parallel()
	j := newJail(t)
	if err := os.Symlink(j.parent, filepath.Join(j.l.dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "PUT"} {
		req := httptest.NewRequest(method, "/files/link/outside.txt?"+j.signedQuery(method, "link/outside.txt"), strings.NewReader("overwritten"))
		rec := httptest.NewRecorder()
		j.l.Handler().ServeHTTP(rec, req)
		if rec.Code < 400 {
			t.Errorf("%s through a link outside: got %d, want it refused", method, rec.Code)
		}
		j.check(t, method, rec.Body.Bytes())
	}
}

// FuzzLocalHandler sends arbitrary paths, queries and bodies, signed or
// not, to the handler: it must never answer 5xx and never touch anything
// outside its directory.
func FuzzLocalHandler(f *testing.F) {
	seeds := []struct {
		method, path, query string
		sign                bool
		body                []byte
	}{
		{"PUT", "/files/tasks/1/input/a.csv", "", true, []byte("a,b\n")},
		{"GET", "/files/tasks/1/input/a.csv", "", true, nil},
		{"GET", "/files/tasks/1/input/a.csv", "cd=x", true, nil},
		{"HEAD", "/files/tasks/1", "", true, nil},
		{"PUT", "/files/tasks/1/input/a.csv/b", "", true, []byte("x")},
		{"PUT", "/files/tasks", "", true, []byte("x")},
		{"GET", "/files/../../etc/passwd", "exp=99999999999&m=GET&sig=AAAA", false, nil},
		{"PUT", "/files/%2e%2e/x", "exp=1&max=-1&m=PUT&sig=", false, []byte("x")},
		{"GET", "/files/", "", true, nil},
		{"DELETE", "/files/a", "", true, nil},
		{"PUT", "/files/a/" + strings.Repeat("b", 300), "", true, []byte("x")},
		{"GET", "/other", "", false, nil},
		{"PUT", "/files/.secret", "", true, []byte("x")},
		{"PUT", "/files/a", "exp=&max=1e3&m=PUT%00&sig=%zz", false, nil},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.sign, s.body)
	}
	j := newJail(f)
	h := j.l.Handler()
	f.Fuzz(func(t *testing.T, method, path, query string, sign bool, body []byte) {
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: query},
			Header:     http.Header{},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Host:       "example.com",
			RequestURI: path,
		}
		if sign {
			m := http.MethodGet
			if method == http.MethodPut {
				m = http.MethodPut
			}
			signed := j.signedQuery(m, strings.TrimPrefix(path, FilesPath))
			req.URL.RawQuery = signed + "&" + query
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(t.Context()))
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s: got %d %s, want no 5xx", method, path, req.URL.RawQuery, rec.Code, rec.Body)
		}
		j.check(t, method+" "+path, rec.Body.Bytes())
		filepath.WalkDir(j.l.dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				t.Fatalf("got a symbolic link %s in the store, want none", p)
			}
			return nil
		})
	})
}
