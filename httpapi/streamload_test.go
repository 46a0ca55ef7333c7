package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/store"
)

// countingStore counts the reads an event stream can make, so a test can
// tell what open streams cost the database.
type countingStore struct {
	store.Store
	calls atomic.Int64
}

func (c *countingStore) GetTask(ctx context.Context, tenant, id string) (*commonops.Task, error) {
	c.calls.Add(1)
	return c.Store.GetTask(ctx, tenant, id)
}

func (c *countingStore) ListEvents(ctx context.Context, tenant, id string, after int64, limit int) ([]commonops.Event, error) {
	c.calls.Add(1)
	return c.Store.ListEvents(ctx, tenant, id, after, limit)
}

func (c *countingStore) ListEventsAfter(ctx context.Context, after int64, limit int) ([]commonops.Event, int64, error) {
	c.calls.Add(1)
	return c.Store.ListEventsAfter(ctx, after, limit)
}

// CommitSignal passes the driver's commit signal on to the feed.
func (c *countingStore) CommitSignal() (<-chan struct{}, func()) {
	return c.Store.(interface {
		CommitSignal() (<-chan struct{}, func())
	}).CommitSignal()
}

// idleStreams opens n event streams on n tasks spread over tenants, waits
// until each has its created event, and returns the tasks.
func idleStreams(t *testing.T, e *env, n int) []commonops.Task {
	t.Helper()
	tasks := make([]commonops.Task, n)
	for i := range tasks {
		tasks[i] = e.create(simple, "X-Tenant-Id", loadTenant(i))
	}
	openIdle(t, e, n, func(i int) string { return taskPath(tasks[i].ID, "/events") })
	return tasks
}

// loadTenant is the tenant of the i-th stream or task of a load test.
func loadTenant(i int) string { return fmt.Sprintf("tenant-%d", i%20) }

// openIdle opens n event streams, the i-th at path(i) as loadTenant(i),
// and waits until each has sent its first event. Its clients are bare
// connections (a goroutine and a small buffer each) that read on until the
// test ends, so that the memory the test sees is mostly the server's.
func openIdle(t *testing.T, e *env, n int, path func(i int) string) {
	t.Helper()
	for i := range n {
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nX-Tenant-Id: %s\r\n\r\n", path(i), loadTenant(i))
		br := bufio.NewReaderSize(conn, 256)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			if i == 0 && strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Fatalf("stream %d: got %q, want 200", i, line)
			}
			if strings.HasPrefix(line, "data: ") {
				break // the first event
			}
		}
		go func() { // read events and heartbeats until the test ends
			var buf [512]byte
			for {
				if _, err := conn.Read(buf[:]); err != nil {
					return
				}
			}
		}()
	}
}

// heapInUse is the live heap and stacks after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// TestIdleStreamsCostNoReads opens event streams on a PostgreSQL-backed
// server and counts the store reads they cause while their tasks are
// quiet: the feed's fallback tick, whatever the number of streams. With
// COMMONOPS_STREAM_LOAD=N it opens N streams (1,000 in the issue) and
// reports the reads per second, the memory the streams hold, and the
// commit-to-stream latency of events under load.
func TestIdleStreamsCostNoReads(t *testing.T) {
	n := 50
	if v := os.Getenv("COMMONOPS_STREAM_LOAD"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("COMMONOPS_STREAM_LOAD=%q: %v", v, err)
		}
	}
	st := &countingStore{Store: testdb.Postgres(t)}
	e := newEnv(t, st, func(c *Config) { c.MaxStreams, c.MaxTenantStreams = 10*n, 10*n })
	before := heapInUse()
	goroutines := runtime.NumGoroutine()
	tasks := idleStreams(t, e, n)
	held := int64(heapInUse()) - int64(before)

	const window = 3 * time.Second
	start := st.calls.Load()
	time.Sleep(window)
	reads := st.calls.Load() - start
	perSecond := float64(reads) / window.Seconds()
	t.Logf("%d idle streams: %d store reads in %s (%.1f/s); heap+stacks held %.1f MB (%.1f KB a stream, bare client connections included), %d goroutines more",
		n, reads, window, perSecond, float64(held)/1e6, float64(held)/1e3/float64(n), runtime.NumGoroutine()-goroutines)
	// The feed's tick (1s) and nothing per stream.
	if perSecond > 3 {
		t.Errorf("idle reads: got %.1f/s with %d streams, want at most 3/s (the feed's tick)", perSecond, n)
	}
	if os.Getenv("COMMONOPS_STREAM_LOAD") == "" {
		return
	}
	observed := tasks[:min(50, len(tasks))]
	latency(t, st.Store, observed, 200, len(observed), func(ctx context.Context, i int) <-chan sseEvent {
		events, resp := e.openStream(ctx, observed[i].ID, "", "X-Tenant-Id", observed[i].TenantID)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream: got %d, want 200", resp.StatusCode)
		}
		<-events // created
		return events
	})
}

// latency changes tasks at rate writes a second for 3 s, from concurrent
// writers, while the streams open(ctx, i) returns for i < streams follow
// them, and reports the time from the start of each write to its event on
// a stream (an upper bound of commit→stream: it includes the write itself,
// also reported). Every write must reach a stream.
func latency(t *testing.T, st store.Store, tasks []commonops.Task, rate, streams int, open func(ctx context.Context, i int) <-chan sseEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type key struct {
		task string
		n    int
	}
	var mu sync.Mutex
	written := map[key]time.Time{}
	received := map[key]time.Time{}
	var readers sync.WaitGroup
	for i := range streams {
		events := open(ctx, i)
		readers.Go(func() {
			for ev := range events {
				if task, n := noteN(ev.data); n >= 0 {
					mu.Lock()
					received[key{task, n}] = time.Now()
					mu.Unlock()
				}
			}
		})
	}
	const dur = 3 * time.Second
	tick := time.NewTicker(time.Second / time.Duration(rate))
	var writers sync.WaitGroup
	var writes []time.Duration
	end := time.Now().Add(dur)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		k := i % len(tasks)
		writers.Go(func() {
			t0 := time.Now()
			mu.Lock()
			written[key{tasks[k].ID, i}] = t0
			mu.Unlock()
			_, err := st.UpdateTask(ctx, tasks[k].TenantID, tasks[k].ID, func(x *commonops.Task) (commonops.Change, error) {
				return commonops.Change{Event: commonops.EventProgress, Data: map[string]any{"n": i}}, nil
			})
			if err != nil {
				t.Errorf("update: %v", err)
			}
			mu.Lock()
			writes = append(writes, time.Since(t0))
			mu.Unlock()
		})
	}
	tick.Stop()
	writers.Wait()
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	for k, w := range written {
		if r, ok := received[k]; ok {
			lat = append(lat, r.Sub(w))
		}
	}
	if len(lat) < len(written) {
		t.Errorf("received %d of %d events, want all", len(lat), len(written))
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	slices.Sort(writes)
	t.Logf("write→stream latency over %d events at %d/s (%.0f/s done) on %d streams: p50 %s, p99 %s, max %s (the write alone: p50 %s, p99 %s)",
		len(lat), rate, float64(len(written))/dur.Seconds(), streams, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1],
		writes[len(writes)/2], writes[len(writes)*99/100])
}

// noteN reads the task and the n of a note's event data, or -1.
func noteN(data string) (task string, n int) {
	var ev struct {
		TaskID    string `json:"taskId"`
		EventData struct {
			N *int `json:"n"`
		} `json:"eventData"`
	}
	if json.Unmarshal([]byte(data), &ev) != nil || ev.EventData.N == nil {
		return "", -1
	}
	return ev.TaskID, *ev.EventData.N
}

func (c *countingStore) ListTenantEvents(ctx context.Context, f commonops.EventFilter) ([]commonops.Event, error) {
	c.calls.Add(1)
	return c.Store.ListTenantEvents(ctx, f)
}

// envInt is the integer environment variable name, or def when unset.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestTenantStreamsLoad opens tenant event streams (GET /events) over 20
// tenants on a PostgreSQL-backed server: idle, they cost the store the
// feed's tick whatever their number. With COMMONOPS_TENANT_STREAM_LOAD=N
// it opens N (1,000 in the issue), reports the memory they hold, and the
// commit-to-stream latency, on one more stream per tenant, of
// COMMONOPS_TENANT_STREAM_RATE writes a second (200 by default) while the
// N streams receive every event of their tenant too.
func TestTenantStreamsLoad(t *testing.T) {
	n := envInt(t, "COMMONOPS_TENANT_STREAM_LOAD", 40)
	rate := envInt(t, "COMMONOPS_TENANT_STREAM_RATE", 200)
	st := &countingStore{Store: testdb.Postgres(t)}
	e := newEnv(t, st, func(c *Config) { c.MaxStreams, c.MaxTenantStreams = 2*n+40, 2*n+40 })
	tasks := make([]commonops.Task, 20) // one a tenant: every stream replays its created event
	for i := range tasks {
		tasks[i] = e.create(simple, "X-Tenant-Id", loadTenant(i))
	}
	before := heapInUse()
	goroutines := runtime.NumGoroutine()
	openIdle(t, e, n, func(int) string { return tenantEventsPath })
	held := int64(heapInUse()) - int64(before)

	const window = 3 * time.Second
	start := st.calls.Load()
	time.Sleep(window)
	perSecond := float64(st.calls.Load()-start) / window.Seconds()
	t.Logf("%d idle tenant streams over 20 tenants: %.1f store reads/s; heap+stacks held %.1f MB (%.1f KB a stream, bare client connections included), %d goroutines more",
		n, perSecond, float64(held)/1e6, float64(held)/1e3/float64(n), runtime.NumGoroutine()-goroutines)
	if perSecond > 3 {
		t.Errorf("idle reads: got %.1f/s with %d streams, want at most 3/s (the feed's tick)", perSecond, n)
	}
	if os.Getenv("COMMONOPS_TENANT_STREAM_LOAD") == "" {
		return
	}
	latency(t, st.Store, tasks, rate, len(tasks), func(ctx context.Context, i int) <-chan sseEvent {
		events, resp := e.openTenantStream(ctx, nil, "", "X-Tenant-Id", tasks[i].TenantID)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant stream: got %d, want 200", resp.StatusCode)
		}
		<-events // the tenant's created event
		return events
	})
}
