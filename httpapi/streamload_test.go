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
// until each has its created event, and returns the tasks. Its clients are
// bare connections (a goroutine and a small buffer each), so that the
// memory the test sees is mostly the server's.
func idleStreams(t *testing.T, e *env, n int) []commonops.Task {
	t.Helper()
	tasks := make([]commonops.Task, n)
	for i := range tasks {
		tasks[i] = e.create(simple, "X-Tenant-Id", fmt.Sprintf("tenant-%d", i%20))
	}
	for i, task := range tasks {
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nX-Tenant-Id: tenant-%d\r\n\r\n", taskPath(task.ID, "/events"), i%20)
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
				break // the created event
			}
		}
		go func() { // read heartbeats until the test ends
			var buf [64]byte
			for {
				if _, err := conn.Read(buf[:]); err != nil {
					return
				}
			}
		}()
	}
	return tasks
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
	latency(t, e, st.Store, tasks[:min(50, len(tasks))])
}

// latency changes the tasks of open streams at a steady rate and reports
// the time from the start of each write to its event on a stream (an upper
// bound of commit→stream: it includes the write itself, also reported).
func latency(t *testing.T, e *env, st store.Store, tasks []commonops.Task) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type key struct {
		task string
		n    int
	}
	var mu sync.Mutex
	written := map[key]time.Time{}
	received := map[key]time.Time{}
	var wg sync.WaitGroup
	tenant := func(i int) string { return fmt.Sprintf("tenant-%d", i%20) }
	for i, task := range tasks {
		events, resp := e.openStream(ctx, task.ID, "", "X-Tenant-Id", tenant(i))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream: got %d, want 200", resp.StatusCode)
		}
		<-events // created
		wg.Go(func() {
			for ev := range events {
				if n := noteN(ev.data); n >= 0 {
					mu.Lock()
					received[key{task.ID, n}] = time.Now()
					mu.Unlock()
				}
			}
		})
	}
	const rate, dur = 200, 3 * time.Second
	tick := time.NewTicker(time.Second / rate)
	var writes []time.Duration
	end := time.Now().Add(dur)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		k := i % len(tasks)
		t0 := time.Now()
		mu.Lock()
		written[key{tasks[k].ID, i}] = t0
		mu.Unlock()
		_, err := st.UpdateTask(ctx, tenant(k), tasks[k].ID, func(x *commonops.Task) (commonops.Change, error) {
			return commonops.Change{Event: commonops.EventProgress, Data: map[string]any{"n": i}}, nil
		})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		writes = append(writes, time.Since(t0))
	}
	tick.Stop()
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
	t.Logf("write→stream latency over %d events at %d/s on %d streams: p50 %s, p99 %s, max %s (the write alone: p50 %s, p99 %s)",
		len(lat), rate, len(tasks), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1],
		writes[len(writes)/2], writes[len(writes)*99/100])
}

// noteN reads the n of a note's event data, or -1.
func noteN(data string) int {
	var ev struct {
		EventData struct {
			N *int `json:"n"`
		} `json:"eventData"`
	}
	if json.Unmarshal([]byte(data), &ev) != nil || ev.EventData.N == nil {
		return -1
	}
	return *ev.EventData.N
}
