package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// idleStreams is how many streams one process must hold (the issue's
	// goal: under 100 MB of extra memory).
	idleStreams = 1000
	// probeStreams are the streams the delay is measured on, opened beside
	// the idle ones.
	probeStreams = 4
)

// streamsRate is the paced create load of the delay phase.
var (
	streamsRate  = flag.Int("stream-rate", 1000, "tasks/s created during the streams benchmark's delay phase")
	streamsRoles = flag.String("stream-roles", "", "COMMONOPS_ROLES of the streams benchmark's process (e.g. api: no worker runs the tasks); empty: every role")
)

// benchStreams measures the tenant-wide event stream (GET
// /api/v1/operations/events, Server-Sent Events) on one process:
//
//   - memory: the process's VmRSS before and after idleStreams streams are
//     open; a stream counts as open once its response (200) and first line
//     (the "retry:" the server sends at once) have arrived.
//   - delay: with those streams still open, probeStreams more follow the
//     tenant a paced create load writes to (noop tasks, run by the same
//     process's worker). For each event a probe reads, the delay is its
//     arrival time minus the event's createdAt, the time the service stamps
//     on the change just before the transaction that writes it commits: so
//     the figure is commit + feed read + fan-out + write + client read, and
//     overstates the delay from the commit itself by the time the write
//     takes. The delay of each created event from its create's response
//     (which follows the commit) is reported beside it as a lower bound.
//
// The idle streams follow another tenant, so they cost the feed a filter
// check per event but no writes; the stream caps are raised to fit them.
func benchStreams(ctx context.Context) error {
	dbURL, err := freshDatabase(ctx, "commonops_bench_streams")
	if err != nil {
		return err
	}
	env := []string{"COMMONOPS_DATABASE_URL=" + dbURL,
		fmt.Sprintf("COMMONOPS_MAX_STREAMS=%d", idleStreams+probeStreams),
		fmt.Sprintf("COMMONOPS_MAX_TENANT_STREAMS=%d", idleStreams+probeStreams)}
	roles := "every role"
	if *streamsRoles != "" {
		env = append(env, "COMMONOPS_ROLES="+*streamsRoles)
		roles = "roles " + *streamsRoles
	}
	svc, err := startService(ctx, env...)
	if err != nil {
		return err
	}
	defer svc.stop()
	setupLine("commonops with "+roles+" in one process on PostgreSQL, embedded bus",
		fmt.Sprintf("%d tenant streams (tenant idle) held open, then %d more (tenant bench) read during a paced %d noop tasks/s create load for %s", idleStreams, probeStreams, *streamsRate, *duration),
		"delay = arrival on the stream − the event's createdAt (stamped by the service before its commit)")

	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: the streams end first

	// Warm the process up (one stream starts the feed; one create the
	// pools) so the baseline is not its empty start.
	if _, err := createTask(svc.base, noopBody); err != nil {
		return err
	}
	warm, err := openStream(streamCtx, client, svc.base, "idle", "")
	if err != nil {
		return fmt.Errorf("warm-up stream: %w", err)
	}
	warm.Body.Close()
	time.Sleep(500 * time.Millisecond)
	before, err := vmRSS(svc.cmd.Process.Pid)
	if err != nil {
		return err
	}

	var (
		opened  atomic.Int64
		openErr error
		mu      sync.Mutex
		ready   sync.WaitGroup
	)
	t0 := time.Now()
	sem := make(chan struct{}, 64) // open at most 64 at once, as a burst of reconnecting clients would
	for range idleStreams {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			resp, err := openStream(streamCtx, client, svc.base, "idle", "")
			<-sem
			if err != nil {
				mu.Lock()
				openErr = err
				mu.Unlock()
				ready.Done()
				return
			}
			defer resp.Body.Close()
			opened.Add(1)
			ready.Done()
			_, _ = resp.Body.Read(make([]byte, 512)) // hold it until cancel: nothing arrives for this tenant but heartbeats
			<-streamCtx.Done()
		}()
	}
	ready.Wait()
	if openErr != nil {
		return fmt.Errorf("%d of %d streams opened: %w", opened.Load(), idleStreams, openErr)
	}
	openedIn := time.Since(t0)
	time.Sleep(time.Second) // let the process settle
	after, err := vmRSS(svc.cmd.Process.Pid)
	if err != nil {
		return err
	}
	extra := after - before
	fmt.Printf("streams: %d of %d open in %s; VmRSS %.1f MB → %.1f MB: %.1f MB extra (%.0f KB a stream)   goal < 100 MB: %s\n",
		opened.Load(), idleStreams, openedIn.Round(time.Millisecond), mb(before), mb(after), mb(extra),
		float64(extra)/1024/float64(idleStreams), verdict(opened.Load() == idleStreams && extra < 100<<20))

	// The delay phase.
	var (
		delays  []time.Duration
		dmu     sync.Mutex
		probeOK sync.WaitGroup
		probErr error
		resyncs atomic.Int64
		// createdArrivals are the probes' "created" events; answered the
		// times the creates' responses arrived. The commit is between the
		// event's createdAt and its create's response, so arrival −
		// response bounds the delay from below as arrival − createdAt
		// does from above.
		createdArrivals []arrival
		answered        sync.Map // task id → time.Time
	)
	for range probeStreams {
		probeOK.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := openStream(streamCtx, client, svc.base, "bench", "")
			if err != nil {
				dmu.Lock()
				probErr = err
				dmu.Unlock()
				probeOK.Done()
				return
			}
			probeOK.Done()
			local := make([]time.Duration, 0, 1<<15)
			var arrived []arrival
			lastID := ""
			for {
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
				for sc.Scan() {
					line := sc.Text()
					if id, ok := strings.CutPrefix(line, "id: "); ok {
						lastID = id
						continue
					}
					if line == "event: resync" {
						resyncs.Add(1)
						continue
					}
					data, ok := strings.CutPrefix(line, "data: ")
					if !ok {
						continue
					}
					now := time.Now()
					var e struct {
						TaskID    string    `json:"taskId"`
						EventType string    `json:"eventType"`
						CreatedAt time.Time `json:"createdAt"`
					}
					if json.Unmarshal([]byte(data), &e) == nil && !e.CreatedAt.IsZero() {
						local = append(local, now.Sub(e.CreatedAt))
						if e.EventType == "created" {
							arrived = append(arrived, arrival{e.TaskID, now})
						}
					}
				}
				resp.Body.Close()
				if streamCtx.Err() != nil {
					break
				}
				// Cut off (resync): resume as EventSource does; the
				// events replayed count with their delay.
				if resp, err = openStream(streamCtx, client, svc.base, "bench", lastID); err != nil {
					break
				}
			}
			dmu.Lock()
			delays = append(delays, local...)
			createdArrivals = append(createdArrivals, arrived...)
			dmu.Unlock()
		}()
	}
	probeOK.Wait()
	if probErr != nil {
		return fmt.Errorf("probe stream: %w", probErr)
	}
	created, elapsed, createLat, err := paced(*streamsRate, *duration, func() error {
		id, err := createTask(svc.base, noopBody)
		if err == nil {
			answered.Store(id, time.Now())
		}
		return err
	})
	if err != nil {
		return err
	}
	time.Sleep(time.Second) // the last events reach the probes
	rss, _ := vmRSS(svc.cmd.Process.Pid)
	cancel()
	wg.Wait()
	p99 := percentile(delays, .99)
	var afterAnswer []time.Duration
	for _, a := range createdArrivals {
		if t, ok := answered.Load(a.task); ok {
			afterAnswer = append(afterAnswer, a.at.Sub(t.(time.Time)))
		}
	}
	fmt.Printf("load: %d noop tasks created in %s = %.0f tasks/s (paced at %d/s); POST p50 %s, p99 %s; VmRSS then %.1f MB\n",
		created, elapsed.Round(time.Millisecond), float64(created)/elapsed.Seconds(), *streamsRate,
		ms(percentile(createLat, .5)), ms(percentile(createLat, .99)), mb(rss))
	fmt.Printf("streams cut off (resync) and resumed: %d\n", resyncs.Load())
	fmt.Printf("delay commit → stream: %d events read on %d streams, p50 %s, p99 %s, max %s   goal p99 < 100 ms: %s\n",
		len(delays), probeStreams, ms(percentile(delays, .5)), ms(p99), ms(percentile(delays, 1)), verdict(len(delays) > 0 && p99 < 100*time.Millisecond))
	fmt.Printf("lower bound, create's response → its created event on the stream: %d events, p50 %s, p99 %s (negative: the event came first)\n",
		len(afterAnswer), ms(percentile(afterAnswer, .5)), ms(percentile(afterAnswer, .99)))
	return nil
}

// arrival is when a probe stream read a task's created event.
type arrival struct {
	task string
	at   time.Time
}

// openStream opens tenant's event stream (after lastID, when set) and
// reads its first line.
func openStream(ctx context.Context, client *http.Client, base, tenant, lastID string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/operations/events", nil)
	req.Header.Set("X-Tenant-Id", tenant)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("stream: status %d", resp.StatusCode)
	}
	first := make([]byte, len("retry:"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "retry:" {
		resp.Body.Close()
		return nil, fmt.Errorf("stream: first bytes %q: %v", first, err)
	}
	return resp, nil
}

// paced calls op rate times a second for d, from as many goroutines as it
// takes (up to 4 × *clients), each call at its slot or, when behind, at
// once. It returns the calls made, the time they took and the latency of
// each.
func paced(rate int, d time.Duration, op func() error) (int64, time.Duration, []time.Duration, error) {
	var (
		next     atomic.Int64
		done     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		lat      []time.Duration
	)
	total := int64(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for range 4 * *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			defer func() {
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
				t0 := time.Now()
				if err := op(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return done.Load(), time.Since(start), lat, firstErr
}

// vmRSS reads the resident set of process pid, in bytes.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
