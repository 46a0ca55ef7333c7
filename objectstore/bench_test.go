package objectstore_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops/objectstore"
)

// benchSize is the file BenchmarkLocalPutGet1GiB moves.
const benchSize = 1 << 30

// BenchmarkLocalPutGet1GiB uploads and downloads a 1 GiB file through the
// local store's handler over real HTTP, next to cp of the same file on the
// same disk, and reports MB/s for each, the ratios to cp, and how much the
// process's peak RSS grew above where it stood before. Run it with
//
//	go test -run '^$' -bench LocalPutGet1GiB -benchtime 1x ./objectstore/
//
// The PUT fsyncs before it answers (an answered upload survives a crash);
// cp does not, so the put/cp ratio includes the cost of durability.
func BenchmarkLocalPutGet1GiB(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src.bin")
	writePattern(b, src, benchSize)

	cpDst := filepath.Join(dir, "cp.bin")
	l := newLocal(b, objectstore.LocalConfig{Dir: filepath.Join(dir, "store"), MaxSize: 2 * benchSize})
	ctx := context.Background()
	getDst := filepath.Join(dir, "get.bin")

	resetPeakRSS(b)
	before := statusKB(b, "VmRSS")
	var putTime, getTime, cpTime time.Duration
	for b.Loop() {
		// cp runs in every round, so it meets the same disk and cache.
		start := time.Now()
		if out, err := exec.Command("cp", src, cpDst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		cpTime += time.Since(start)
		os.Remove(cpDst)

		key := objectstore.InputKey(uuid.NewString(), "big.bin")
		u, err := l.PresignPut(ctx, key, objectstore.PutOptions{})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPut, u.URL, f)
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = benchSize
		resp, err := http.DefaultClient.Do(req)
		f.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("PUT: %v %v", resp, err)
		}
		resp.Body.Close()
		putTime += time.Since(start)

		g, err := l.PresignGet(ctx, key, objectstore.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		resp, err = http.Get(g.URL)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET: %v %v", resp, err)
		}
		out, err := os.Create(getDst)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(out, resp.Body)
		resp.Body.Close()
		out.Close()
		if err != nil || n != benchSize {
			b.Fatalf("GET: got %d bytes, %v; want %d", n, err, benchSize)
		}
		getTime += time.Since(start)
		os.Remove(getDst)
		l.DeletePrefix(ctx, key)
	}
	growth := statusKB(b, "VmHWM") - before

	mbps := func(d time.Duration) float64 { return float64(benchSize) / 1e6 / d.Seconds() }
	put, get, cp := mbps(putTime/time.Duration(b.N)), mbps(getTime/time.Duration(b.N)), mbps(cpTime/time.Duration(b.N))
	b.ReportMetric(put, "put-MB/s")
	b.ReportMetric(get, "get-MB/s")
	b.ReportMetric(cp, "cp-MB/s")
	b.ReportMetric(put/cp, "put/cp")
	b.ReportMetric(get/cp, "get/cp")
	b.ReportMetric(float64(growth)/1024, "peak-RSS-growth-MB")
}

// writePattern writes n pseudo-random bytes to name without holding them.
func writePattern(tb testing.TB, name string, n int64) {
	tb.Helper()
	f, err := os.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.CopyBuffer(f, newPattern(n), make([]byte, 1<<20)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux).
func resetPeakRSS(tb testing.TB) {
	tb.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatalf("reset peak RSS: %v", err)
	}
}

// statusKB reads one kB field of /proc/self/status.
func statusKB(tb testing.TB, field string) int64 {
	tb.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("%s: %v", field, err)
			}
			return kb
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}
