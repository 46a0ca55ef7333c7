// Package s3test runs a real S3 server, versitygw, for tests: Start gives
// each caller a fresh bucket on a gateway shared by the tests of one binary
// that are running at the same time, and stops it when the last one ends.
//
// The gateway binary is $COMMONOPS_VERSITYGW, else
// ~/.cache/commonops-tools/versitygw, else versitygw on PATH; install it with
// .ci/tools.sh. Under -short Start skips the test (go test -short needs no
// S3 server); without -short a missing binary fails the test: it is never
// skipped.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials and region of the test gateway.
const (
	AccessKey = "commonops"
	SecretKey = "commonops-test-secret"
	Region    = "us-east-1"
)

// startTimeout bounds how long the gateway may take to answer.
const startTimeout = 20 * time.Second

// Server is a running gateway with a bucket of its own.
type Server struct {
	// Endpoint is host:port, plain HTTP.
	Endpoint  string
	AccessKey string
	SecretKey string
	// Bucket exists, is empty and belongs to this caller alone.
	Bucket string
	Region string
}

// gateway is the shared versitygw process.
type gateway struct {
	endpoint string
	cmd      *exec.Cmd
	dir      string
	exited   chan struct{}
	output   *limitedWriter
}

var (
	mu      sync.Mutex
	running *gateway
	users   int
	buckets int
)

// skipShort is why a test that needs versitygw skips under -short.
const skipShort = "needs versitygw, a real S3 server (COMMONOPS_VERSITYGW); run scripts/test.sh, or go test without -short"

// Start returns a fresh bucket on a running gateway, starting the gateway
// if no other test holds one. The bucket and, with the last user, the
// gateway go away when t ends. Under -short it skips t.
func Start(t testing.TB) Server {
	t.Helper()
	if testing.Short() {
		t.Skip(skipShort)
	}
	mu.Lock()
	if running == nil {
		g, err := startGateway()
		if err != nil {
			mu.Unlock()
			t.Fatalf("s3test: %v", err)
		}
		running = g
	}
	g := running
	users++
	buckets++
	bucket := bucketName(t.Name(), buckets)
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if users--; users == 0 {
			running = nil
			g.stop()
		}
	})

	s := Server{Endpoint: g.endpoint, AccessKey: AccessKey, SecretKey: SecretKey, Bucket: bucket, Region: Region}
	c, err := s.Client()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", bucket, err)
	}
	return s
}

// Client returns a minio client for the server, to look at or set up the
// bucket behind the code under test.
func (s Server) Client() (*minio.Client, error) {
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", s.Endpoint, err)
	}
	return c, nil
}

var notBucketChar = regexp.MustCompile(`[^a-z0-9]+`)

// bucketName derives a valid, unique bucket name from a test name.
func bucketName(test string, n int) string {
	name := strings.Trim(notBucketChar.ReplaceAllString(strings.ToLower(test), "-"), "-")
	suffix := fmt.Sprintf("-%d-%d", os.Getpid(), n)
	if max := 63 - len("t-") - len(suffix); len(name) > max {
		name = strings.Trim(name[:max], "-")
	}
	return "t-" + name + suffix
}

// binary finds the versitygw executable.
func binary() (string, error) {
	if p := os.Getenv("COMMONOPS_VERSITYGW"); p != "" {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "commonops-tools", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("versitygw not found ($COMMONOPS_VERSITYGW, ~/.cache/commonops-tools/versitygw, PATH); install it with: .ci/tools.sh")
}

// startGateway runs versitygw on a free port over a new directory and waits
// until it answers HTTP. A port taken between choosing and binding it is
// retried.
func startGateway() (*gateway, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	var last error
	for range 3 {
		g, err := tryStart(bin)
		if err == nil {
			return g, nil
		}
		last = err
	}
	return nil, last
}

func tryStart(bin string) (*gateway, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "commonops-s3test-")
	if err != nil {
		return nil, fmt.Errorf("gateway directory: %w", err)
	}
	g := &gateway{endpoint: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, exited: make(chan struct{}), output: &limitedWriter{max: 64 << 10}}
	g.cmd = exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", g.endpoint, "--quiet", "posix", dir)
	g.cmd.Stdout = g.output
	g.cmd.Stderr = g.cmd.Stdout
	// Should the test binary die without its cleanups, the gateway dies too.
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { g.cmd.Wait(); close(g.exited) }()

	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-g.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("versitygw exited at start (%v): %s", g.cmd.ProcessState, g.output.String())
		default:
		}
		// Any HTTP answer (an unsigned request gets 403) means it serves.
		if resp, err := client.Get("http://" + g.endpoint + "/"); err == nil {
			resp.Body.Close()
			return g, nil
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("versitygw did not answer on %s within %s: %s", g.endpoint, startTimeout, g.output.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the gateway and removes its files.
func (g *gateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
	os.RemoveAll(g.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// limitedWriter keeps the first max bytes of the gateway's output for error
// messages, and drops the rest.
type limitedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (w *limitedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
