package objectstore_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/s3test"
	"github.com/commonops/commonops/objectstore"
)

// newS3 returns a store on a fresh bucket of the shared test gateway.
func newS3(t testing.TB, edit func(*objectstore.S3Config)) (*objectstore.S3, s3test.Server) {
	t.Helper()
	srv := s3test.Start(t)
	cfg := objectstore.S3Config{
		Endpoint:  srv.Endpoint,
		Region:    srv.Region,
		Bucket:    srv.Bucket,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		PathStyle: true,
		PartSize:  objectstore.MinPartSize,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := objectstore.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s, srv
}

func TestS3(t *testing.T) {
	t.Parallel()
	testStore(t, harness{
		open: func(t *testing.T) objectstore.Store {
			s, _ := newS3(t, nil)
			return s
		},
		sigParam: "X-Amz-Signature",
		bigSize:  40 << 20, // 8 parts of 5 MiB
	})
}

// TestS3PublicEndpoint signs URLs for the host clients use, which differs
// from the one the service uses; the gateway checks the signed host.
func TestS3PublicEndpoint(t *testing.T) {
	t.Parallel()
	var public string
	s, srv := newS3(t, func(c *objectstore.S3Config) {
		_, port, _ := net.SplitHostPort(c.Endpoint)
		public = "http://localhost:" + port
		c.PublicEndpoint = public
	})
	ctx := context.Background()
	key := objectstore.InputKey(uuid.NewString(), "in.csv")
	u, err := s.PresignPut(ctx, key, objectstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.URL, public+"/"+srv.Bucket+"/") {
		t.Fatalf("got upload URL %s, want it under %s/%s/", u.URL, public, srv.Bucket)
	}
	if resp := do(t, "PUT", u.URL, u.Headers, []byte("abc")); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT via the public endpoint: got %d %s, want 200", resp.StatusCode, resp.body)
	}
	if info, err := s.Stat(ctx, key); err != nil || info.Size != 3 {
		t.Errorf("Stat: got %+v, %v; want 3 bytes", info, err)
	}
	// The same URL sent to the internal host name breaks the signature.
	internal, _ := url.Parse(u.URL)
	internal.Host = srv.Endpoint
	if resp := do(t, "PUT", internal.String(), nil, []byte("abc")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT to a host the URL was not signed for: got %d, want 403", resp.StatusCode)
	}
}

func TestS3CreateBucket(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	cfg := objectstore.S3Config{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		PathStyle: true, Bucket: srv.Bucket + "-new",
	}
	s, err := objectstore.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Errorf("Check on a missing bucket: got %v, want EUNAVAILABLE", err)
	}
	cfg.CreateBucket = true
	for i := range 2 { // the second start finds the bucket there
		if s, err = objectstore.NewS3(context.Background(), cfg); err != nil {
			t.Fatalf("NewS3 #%d with CreateBucket: %v", i+1, err)
		}
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check after CreateBucket: got %v, want nil", err)
	}
}

func TestS3Unavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	s, err := objectstore.NewS3(context.Background(), objectstore.S3Config{
		Endpoint: addr, Bucket: "bkt", AccessKey: "a", SecretKey: "s", PathStyle: true,
	})
	if err != nil {
		t.Fatalf("NewS3 must not need the store: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Check(ctx); commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Errorf("Check: got %v, want EUNAVAILABLE", err)
	}
	if _, err := s.Stat(ctx, "tasks/x/errors.csv"); commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Errorf("Stat: got %v, want EUNAVAILABLE", err)
	}
	// Signing needs no network: URLs are still handed out.
	if _, err := s.PresignGet(ctx, "tasks/x/errors.csv", objectstore.GetOptions{}); err != nil {
		t.Errorf("PresignGet: got %v, want a URL", err)
	}
}

func TestNewS3Config(t *testing.T) {
	t.Parallel()
	base := objectstore.S3Config{Endpoint: "127.0.0.1:9000", Bucket: "bkt", AccessKey: "a", SecretKey: "s"}
	tests := []struct {
		name    string
		edit    func(*objectstore.S3Config)
		wantErr bool
		wantURL string // pattern a download URL starts with
		// wantOrigin is the URLs' origin, for a page's connect-src: on AWS
		// the client signs for the regional dual-stack host, not the
		// endpoint it was given.
		wantOrigin string
	}{
		{"defaults", func(*objectstore.S3Config) {}, false, `^http://127\.0\.0\.1:9000/bkt/tasks/`, "http://127.0.0.1:9000"},
		{"AWS virtual host", func(c *objectstore.S3Config) { c.Endpoint, c.UseSSL = "s3.amazonaws.com", true }, false, `^https://bkt\.s3\.[a-z0-9.-]*amazonaws\.com/tasks/`, "https://bkt.s3.dualstack.us-east-1.amazonaws.com"},
		{"AWS path style", func(c *objectstore.S3Config) { c.Endpoint, c.PathStyle = "s3.amazonaws.com", true }, false, `^http://s3\.[a-z0-9.-]*amazonaws\.com/bkt/tasks/`, "http://s3.dualstack.us-east-1.amazonaws.com"},
		{"public https URL", func(c *objectstore.S3Config) { c.PathStyle, c.PublicEndpoint = true, "https://files.example.com" }, false, `^https://files\.example\.com/bkt/tasks/`, "https://files.example.com"},
		{"no endpoint", func(c *objectstore.S3Config) { c.Endpoint = "" }, true, "", ""},
		{"no bucket", func(c *objectstore.S3Config) { c.Bucket = "" }, true, "", ""},
		{"invalid bucket", func(c *objectstore.S3Config) { c.Bucket = "No_Such" }, true, "", ""},
		{"no credentials", func(c *objectstore.S3Config) { c.SecretKey = "" }, true, "", ""},
		{"part too small", func(c *objectstore.S3Config) { c.PartSize = 1 << 20 }, true, "", ""},
		{"endpoint with a path", func(c *objectstore.S3Config) { c.PublicEndpoint = "https://x.example.com/some/path" }, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			s, err := objectstore.NewS3(context.Background(), cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u, err := s.PresignGet(context.Background(), "tasks/x/errors.csv", objectstore.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(tt.wantURL).MatchString(u.URL) {
				t.Errorf("got URL %s, want it to match %s", u.URL, tt.wantURL)
			}
			if got := s.URLOrigin(); got != tt.wantOrigin || !strings.HasPrefix(u.URL, got+"/") {
				t.Errorf("URLOrigin: got %q, want %q, the origin of %s", got, tt.wantOrigin, u.URL)
			}
			// The CSP source: the bucket's path in path style, the origin
			// (whose host names the bucket) in virtual-host style.
			wantSource := tt.wantOrigin
			if strings.HasPrefix(u.URL, tt.wantOrigin+"/bkt/") {
				wantSource += "/bkt/"
			}
			if got := s.URLSource(); got != wantSource || !strings.HasPrefix(u.URL, got) {
				t.Errorf("URLSource: got %q, want %q, a prefix of %s", got, wantSource, u.URL)
			}
		})
	}
}
