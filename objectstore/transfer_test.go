package objectstore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops/objectstore"
)

// stall opens a connection to a signed upload URL, sends a PUT's headers
// announcing size bytes and then body, and leaves the connection open,
// the rest of the body never sent.
func stall(tb testing.TB, rawURL string, size int, body string) net.Conn {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", u.RequestURI(), u.Host, size, body); err != nil {
		tb.Fatalf("send headers: %v", err)
	}
	return c
}

// statusOn reads the answer on c, waiting at most within; 0 if none came.
func statusOn(tb testing.TB, c net.Conn, within time.Duration) (int, http.Header, string) {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// signedPut returns an upload URL for key.
func signedPut(tb testing.TB, l *objectstore.Local, key string) string {
	tb.Helper()
	u, err := l.PresignPut(context.Background(), key, objectstore.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return u.URL
}

// entered counts the PUTs that got past the handler's limits (AllowPut is
// asked right after them).
type entered struct{ n atomic.Int64 }

func (e *entered) allow(context.Context, string) error { e.n.Add(1); return nil }

func (e *entered) wait(tb testing.TB, n int64) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.n.Load() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d PUTs reached the handler, want %d", e.n.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLocalOneUploadPerKey(t *testing.T) {
	t.Parallel()
	var in entered
	dir := t.TempDir()
	l := newLocal(t, objectstore.LocalConfig{Dir: dir, AllowPut: in.allow})
	key := objectstore.InputKey(uuid.NewString(), "in.csv")
	u := signedPut(t, l, key)
	first := stall(t, u, 10, "12345")
	in.wait(t, 1)
	resp := do(t, "PUT", u, nil, []byte("0123456789"))
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(resp.body), "already in progress") {
		t.Errorf("second PUT to the key: got %d %s, want 409 saying an upload is in progress", resp.StatusCode, resp.body)
	}
	first.Write([]byte("67890"))
	if status, _, body := statusOn(t, first, 10*time.Second); status != http.StatusOK {
		t.Fatalf("first PUT: got %d %s, want 200", status, body)
	}
	if got := string(read(t, l, key)); got != "1234567890" {
		t.Errorf("stored: got %q, want the first PUT's body", got)
	}
	// The key is free again.
	if resp := do(t, "PUT", u, nil, []byte("again")); resp.StatusCode != http.StatusOK {
		t.Errorf("PUT after the first ended: got %d %s, want 200", resp.StatusCode, resp.body)
	}
}

func TestLocalMaxConcurrentUploads(t *testing.T) {
	t.Parallel()
	var in entered
	l := newLocal(t, objectstore.LocalConfig{MaxConcurrentUploads: 2, AllowPut: in.allow})
	id := uuid.NewString()
	stall(t, signedPut(t, l, objectstore.InputKey(id, "a.csv")), 10, "")
	stall(t, signedPut(t, l, objectstore.InputKey(id, "b.csv")), 10, "")
	in.wait(t, 2)
	third := stall(t, signedPut(t, l, objectstore.InputKey(id, "c.csv")), 10, "")
	status, h, body := statusOn(t, third, 5*time.Second)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("third PUT: got %d (Retry-After %q) %s, want 503 with Retry-After", status, h.Get("Retry-After"), body)
	}
}

func TestLocalSlowUploadAborted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := newLocal(t, objectstore.LocalConfig{Dir: dir, MinTransferRate: 1000, TransferGrace: 300 * time.Millisecond})
	key := objectstore.InputKey(uuid.NewString(), "in.csv")
	u := signedPut(t, l, key)
	for _, tc := range []struct {
		name string
		sent string
	}{
		{"idle", ""},
		{"stalled after some bytes", strings.Repeat("x", 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := stall(t, u, 100_000, tc.sent)
			start := time.Now()
			status, _, body := statusOn(t, c, 10*time.Second)
			if status != http.StatusRequestTimeout {
				t.Fatalf("got %d %s, want 408", status, body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("answered after %s, want within about the 300ms grace", d.Round(time.Millisecond))
			}
			assertFiles(t, dir)
		})
	}
	// A body that keeps up the rate is taken, however long it takes.
	pr, pw := io.Pipe()
	go func() {
		for range 8 {
			pw.Write([]byte(strings.Repeat("y", 200))) // 2,000 B/s
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	if resp := put(t, u, pr, true); resp.StatusCode != http.StatusOK {
		t.Errorf("PUT at twice the minimum rate: got %d %s, want 200", resp.StatusCode, resp.body)
	}
}

func TestLocalSlowDownloadCut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := newLocal(t, objectstore.LocalConfig{Dir: dir, MinTransferRate: 1 << 20, TransferGrace: 200 * time.Millisecond})
	key := objectstore.OutputKey(uuid.NewString(), "big.bin")
	// Larger than what the socket buffers of both ends hold.
	const size = 64 << 20
	w, err := l.Create(context.Background(), key, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(w, newPattern(size), size); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := l.PresignGet(context.Background(), key, objectstore.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(g.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(2 * time.Second) // a reader that stops reading for 10 graces
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= size {
		t.Errorf("read %d of %d bytes after stalling, err %v; want the download cut off", n, size, err)
	}
}

// TestLocalStalledUploadsHoldLittleMemory: 500 clients that send a PUT's
// headers and then nothing cost the handler no copy buffer each: the heap
// grows by well under a buffer (1 MiB) a client.
func TestLocalStalledUploadsHoldLittleMemory(t *testing.T) {
	const clients = 500
	var in entered
	l := newLocal(t, objectstore.LocalConfig{MaxConcurrentUploads: 2 * clients, AllowPut: in.allow})
	id := uuid.NewString()
	urls := make([]string, clients)
	for i := range urls {
		urls[i] = signedPut(t, l, objectstore.InputKey(id, fmt.Sprintf("in-%d.csv", i)))
	}
	before := heap()
	for _, u := range urls {
		stall(t, u, 1<<20, "")
	}
	in.wait(t, clients)
	time.Sleep(200 * time.Millisecond) // past AllowPut, into the copy
	grown := heap() - before
	t.Logf("%d stalled uploads: heap grew %.1f MiB (%.1f KiB each)", clients, float64(grown)/(1<<20), float64(grown)/1024/clients)
	if limit := int64(clients) * 64 << 10; grown > limit {
		t.Errorf("heap grew %d MiB for %d stalled uploads, want under %d MiB", grown>>20, clients, limit>>20)
	}
}

// heap is the live heap after a collection, in bytes.
func heap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkSlowClients opens 2,000 connections that send a PUT's headers
// and one byte of the body and then stall, against the local store's
// handler with its default limits, and reports how much the live heap and
// the RSS grew, and how the clients were answered. Run it with
//
//	go test -run '^$' -bench SlowClients -benchtime 1x ./objectstore/
func BenchmarkSlowClients(b *testing.B) {
	const clients = 2000
	for _, tc := range []struct {
		name    string
		sameURL bool
	}{{"DistinctURLs", false}, {"OneURL", true}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				dir := b.TempDir()
				l := newLocal(b, objectstore.LocalConfig{Dir: filepath.Join(dir, "store")})
				id := uuid.NewString()
				urls := make([]string, clients)
				for i := range urls {
					name := "in.csv"
					if !tc.sameURL {
						name = fmt.Sprintf("in-%d.csv", i)
					}
					urls[i] = signedPut(b, l, objectstore.InputKey(id, name))
				}
				heapBefore, rssBefore := heap(), statusKB(b, "VmRSS")
				conns := make([]net.Conn, clients)
				for i, u := range urls {
					conns[i] = stall(b, u, 1<<20, "x")
				}
				answered := map[int]int{}
				for _, c := range conns {
					status, _, _ := statusOn(b, c, 50*time.Millisecond)
					answered[status]++
				}
				heapGrown, rssGrown := heap()-heapBefore, statusKB(b, "VmRSS")-rssBefore
				b.ReportMetric(float64(heapGrown)/(1<<20), "heap-growth-MB")
				b.ReportMetric(float64(rssGrown)/1024, "RSS-growth-MB")
				b.ReportMetric(float64(statusKB(b, "VmRSS"))/1024, "RSS-MB")
				b.ReportMetric(float64(answered[0]), "in-flight")
				b.ReportMetric(float64(answered[http.StatusServiceUnavailable]), "503s")
				b.ReportMetric(float64(answered[http.StatusConflict]), "409s")
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}
