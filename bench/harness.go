package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// removeBuilt removes the binary binary built, if it built one.
func removeBuilt() {
	if *bin == "" && binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// binary builds cmd/commonops once per run, or returns the -bin binary.
func binary() (string, error) {
	if *bin != "" {
		return *bin, nil
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "commonops-bench")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "commonops")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/commonops")
		cmd.Dir = ".."
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		buildErr = cmd.Run()
	})
	return binPath, buildErr
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// service is a running commonops process.
type service struct {
	base    string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	dataDir string // removed by stop
}

// startService runs commonops serve with env on a free port and waits for
// it to answer.
func startService(ctx context.Context, env ...string) (*service, error) {
	port := freePort()
	bin, err := binary()
	if err != nil {
		return nil, fmt.Errorf("build commonops: %w", err)
	}
	dataDir, err := os.MkdirTemp("", "commonops-bench-data")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(), append([]string{
		fmt.Sprintf("COMMONOPS_ADDR=127.0.0.1:%d", port),
		"COMMONOPS_DATA_DIR=" + dataDir,
		"COMMONOPS_LOG_LEVEL=warn",
		// The benchmarks drive one tenant far past the per-tenant quotas;
		// a caller's env may turn them on again.
		"COMMONOPS_QUOTA_CREATES_PER_MINUTE=0",
		"COMMONOPS_QUOTA_CONCURRENT_HEAVY=0",
		"COMMONOPS_QUOTA_STORED_BYTES=0",
	}, env...)...)
	s := &service{base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, log: &bytes.Buffer{}, dataDir: dataDir}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dataDir)
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("commonops did not start: %s", s.log.String())
}

func (s *service) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(s.dataDir)
}

// adminURL is the PostgreSQL server the benchmarks create databases on.
func adminURL() string {
	if u := os.Getenv("BENCH_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// freshDatabase drops and creates database name and returns its URL.
func freshDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, _ := url.Parse(adminURL())
	u.Path = "/" + name
	return u.String(), nil
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}

func post(url string, body []byte) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tenant-Id", "bench")
	return httpClient.Do(req)
}

func get(url string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Tenant-Id", "bench")
	return httpClient.Do(req)
}

// createTask creates one task and returns its id.
func createTask(base string, body []byte) (string, error) {
	resp, err := post(base+"/api/v1/operations/tasks", body)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Task struct {
			ID string `json:"id"`
		} `json:"task"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", err
	}
	return out.Task.ID, nil
}

// load runs n clients calling op until d passes, and returns how many calls
// succeeded and their latencies.
func load(n int, d time.Duration, op func(worker, i int) error) (ok int64, lat []time.Duration, err error) {
	var (
		mu       sync.Mutex
		firstErr error
		count    atomic.Int64
		wg       sync.WaitGroup
	)
	stop := time.Now().Add(d)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for i := 0; time.Now().Before(stop); i++ {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
				count.Add(1)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return count.Load(), lat, firstErr
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func verdict(ok bool) string {
	if ok {
		return "goal met"
	}
	return "GOAL MISSED"
}

func setupLine(parts ...string) { fmt.Println("setup: " + strings.Join(parts, "; ")) }
