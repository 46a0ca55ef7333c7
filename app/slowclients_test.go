package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/operations"
)

// rssMB reads the process's resident set size.
func rssMB(tb testing.TB) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkSlowClients is the hardening issue's slow-client attack on a
// whole server (the API and the local store on the embedded default):
// 2,000 connections at once, a quarter each idle keep-alives, headers sent
// a byte at a time, API bodies that stall after a byte, and uploads to
// signed URLs that stall after a byte. Meanwhile a well-behaved client
// reads a task 500 times. It reports that client's p50/p99 latency and
// the RSS of the process (server and the 2,000 clients together):
//
//	go test -run '^$' -bench SlowClients -benchtime 1x ./app/
func BenchmarkSlowClients(b *testing.B) {
	const clients = 2000
	ctx := context.Background()
	dir := b.TempDir()
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", DataDir: dir, DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"), Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer a.Stop()
	addr := a.Addr()
	svc := a.Service()
	c, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant, Input: commonops.CreateInput{TaskType: "noop", EntityType: "x", ScheduledAt: ptr(time.Now().Add(time.Hour))}})
	if err != nil {
		b.Fatal(err)
	}
	var uploads []string
	for range clients / 4 {
		f, _, err := svc.Create(ctx, operations.CreateRequest{TenantID: commonops.DefaultTenant, Input: commonops.CreateInput{TaskType: "noop", EntityType: "x", FileName: ptr("in.csv")}})
		if err != nil {
			b.Fatal(err)
		}
		uploads = append(uploads, *f.UploadURL)
	}
	for range b.N {
		rssBefore := rssMB(b)
		var conns []net.Conn
		dial := func() net.Conn {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, conn)
			return conn
		}
		for i := range clients / 4 {
			idle := dial() // a keep-alive that asks once and then sits
			fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(dial(), "GET /api/v1/opera")                                                                                                    // headers a byte at a time
			fmt.Fprintf(dial(), "POST /api/v1/operations/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{") // a body that stalls
			u, _ := url.Parse(uploads[i])
			fmt.Fprintf(dial(), "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nx", u.RequestURI()) // an upload that stalls
		}
		time.Sleep(500 * time.Millisecond) // let the server take them all in

		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		lat := make([]time.Duration, 0, 500)
		for range 500 {
			start := time.Now()
			resp, err := client.Get("http://" + addr + "/api/v1/operations/tasks/" + c.Task.ID)
			if err != nil {
				b.Fatal(err)
			}
			var t commonops.Task
			err = json.NewDecoder(resp.Body).Decode(&t)
			resp.Body.Close()
			if err != nil || t.ID != c.Task.ID {
				b.Fatalf("GET the task: %v", err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(rssMB(b), "RSS-MB")
		b.ReportMetric(rssMB(b)-rssBefore, "RSS-growth-MB")
		for _, conn := range conns {
			conn.Close()
		}
	}
}
