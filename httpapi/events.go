package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/feed"
)

// eventsBatchMax bounds one page of GET /tasks/{id}/events, and one read of
// an event stream.
const eventsBatchMax = 1000

// eventsPage is the answer of GET /tasks/{id}/events.
type eventsPage struct {
	Events []commonops.Event `json:"events"`
}

// handleEvents serves GET /tasks/{id}/events: the task's history after
// ?after= (up to ?limit=) as JSON or, with Accept: text/event-stream, as a
// live Server-Sent Events stream (see stream and taskEvents).
func handleEvents(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		q := newQuery(r)
		after, limit, sse := eventsQuery(r, q)
		if err := q.err(); err != nil {
			return err
		}
		tenant := info(r).tenant
		if sse {
			return s.stream(w, r, tenant, after, &taskEvents{s: s, tenant: tenant, id: id})
		}
		events, err := s.svc.Events(r.Context(), tenant, id, after, limit)
		if err != nil {
			return err
		}
		s.writeEvents(w, r, events)
		return nil
	})
}

// eventsQuery reads what every events route takes: ?after= (an event id),
// ?limit= and, for a stream (Accept: text/event-stream), Last-Event-ID,
// which wins over a smaller ?after=.
func eventsQuery(r *http.Request, q *query) (after int64, limit int, sse bool) {
	after = int64(q.int("after", 0, 0, math.MaxInt))
	limit = q.int("limit", eventsBatchMax, 1, eventsBatchMax)
	sse = wantsStream(r)
	if last := strings.TrimSpace(r.Header.Get("Last-Event-ID")); sse && last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			q.fail("Last-Event-ID", "must be the id of an event")
		}
		after = max(after, n)
	}
	return after, limit, sse
}

// writeEvents answers a page of events as JSON.
func (s *server) writeEvents(w http.ResponseWriter, r *http.Request, events []commonops.Event) {
	if events == nil {
		events = []commonops.Event{}
	}
	s.writeJSON(w, r, http.StatusOK, eventsPage{Events: events})
}

// wantsStream reports whether the client accepts an event stream.
func wantsStream(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// streamRetry is the reconnection delay an event stream asks EventSource
// clients for.
const streamRetry = 2 * time.Second

// streamsRetryAfter is the Retry-After of a stream refused by a cap.
const streamsRetryAfter = "5"

// streamSubscribeTimeout bounds the wait for a feed that has not started
// (its first read failing): the stream is then refused with 503.
const streamSubscribeTimeout = 5 * time.Second

// eventSource is what one event stream sends: a task's events (taskEvents)
// or a tenant's (tenantEvents). stream does the rest, the same for both.
type eventSource interface {
	// filter selects the stream's events from the feed.
	filter() feed.Filter
	// open runs once subscribed and before any byte is sent, so its error is
	// still a problem response. It returns the id the replay stops at, given
	// the feed's position from.
	open(ctx context.Context, from int64) (until int64, err error)
	// replay reads up to eventsBatchMax of the stream's events after an id.
	replay(ctx context.Context, after int64) ([]commonops.Event, error)
	// sent is told of each event the stream sent.
	sent(e commonops.Event)
	// end reports whether the stream is over, and the data of its final
	// "end" event.
	end(ctx context.Context) (data string, over bool, err error)
}

// stream sends src's events after `after` as Server-Sent Events, then the
// new ones as they are committed.
//
// It subscribes to the process's event feed first, then replays the
// history from the store up to the subscription's From (in pages of
// eventsBatchMax), then sends what the feed delivers: every event once,
// in id order, across the switch. A stream costs the database nothing while
// no event of it is written.
//
// Each event is a default ("message") event whose id: is the event id (so a
// reconnecting EventSource resumes through Last-Event-ID) and whose data is
// the event JSON. A comment line goes out after StreamHeartbeat of silence.
// When src says it is over, a final "end" event closes the stream: a client
// should then stop rather than reconnect. A stream that falls
// Config.StreamBuffer events behind gets a final "resync" event instead:
// the client reconnects with Last-Event-ID and catches up from the store.
// Beyond the caps (Config.MaxStreams, MaxTenantStreams, which task and
// tenant streams share) a stream is refused with 429.
func (s *server) stream(w http.ResponseWriter, r *http.Request, tenant string, after int64, src eventSource) error {
	ctx := r.Context()
	release, refused := s.streams.acquire(tenant)
	if release == nil {
		w.Header().Set("Retry-After", streamsRetryAfter)
		s.writeProblem(w, r, problem{Type: problemBase + "too-many-streams", Title: "Too many event streams",
			Status: http.StatusTooManyRequests, Detail: refused})
		return nil
	}
	defer release()
	sub, err := s.subscribe(ctx, src.filter())
	if err != nil {
		return err
	}
	defer sub.Close()
	until, err := src.open(ctx, sub.From())
	if err != nil {
		return err // before any byte is sent: still a problem response
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's WriteTimeout; not every writer supports it
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", streamRetry.Milliseconds()); err != nil {
		return nil
	}
	_ = rc.Flush()
	ended := func(err error) error {
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "event stream ended", "request_id", info(r).id, "path", r.URL.Path, "err", err)
		}
		return nil // headers are sent; the stream simply ends
	}

	// The history up to the feed's start.
	for more := true; more; {
		events, err := src.replay(ctx, after)
		if err != nil {
			return ended(err)
		}
		more = len(events) == eventsBatchMax
		for _, e := range events {
			if e.ID > until {
				more = false
				break
			}
			if err := writeEvent(w, e); err != nil {
				return ended(err)
			}
			after = e.ID
			src.sent(e)
		}
	}
	heartbeat := time.NewTimer(StreamHeartbeat)
	defer heartbeat.Stop()
	for {
		data, over, err := src.end(ctx)
		if err != nil {
			return ended(err)
		}
		if over {
			_, _ = fmt.Fprintf(w, "event: end\ndata: %s\n\n", data)
			_ = rc.Flush()
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case <-sub.Lost():
			// Fell behind (or the feed stopped): the client resumes from
			// the store through Last-Event-ID.
			_, _ = fmt.Fprint(w, "event: resync\ndata: {}\n\n")
			_ = rc.Flush()
			return nil
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			heartbeat.Reset(StreamHeartbeat)
		case e := <-sub.Events():
			// Send what is buffered, then flush once.
			for sending := true; sending; {
				if e.ID > after {
					if err := writeEvent(w, *e); err != nil {
						return nil
					}
					after = e.ID
					src.sent(*e)
				}
				select {
				case e = <-sub.Events():
				default:
					sending = false
				}
			}
			heartbeat.Reset(StreamHeartbeat)
		}
	}
}

// taskEvents is the stream of one task: once the task is terminal and its
// events are sent, a final "end" event carrying its status closes it.
type taskEvents struct {
	s          *server
	tenant, id string
	t          *commonops.Task
	terminal   bool // an event sent moved the task to a terminal status
}

func (te *taskEvents) filter() feed.Filter { return feed.Filter{TenantID: te.tenant, TaskID: te.id} }

// open reads the task before its events: the event of the change that made
// it terminal was committed with it, so it is in the replay that follows.
// A terminal task's history is replayed in full, as it takes no more
// events from the feed.
func (te *taskEvents) open(ctx context.Context, from int64) (int64, error) {
	t, err := te.s.svc.Get(ctx, te.tenant, te.id)
	if err != nil {
		return 0, err
	}
	te.t = t
	if t.Status.Terminal() {
		return math.MaxInt64, nil
	}
	return from, nil
}

func (te *taskEvents) replay(ctx context.Context, after int64) ([]commonops.Event, error) {
	return te.s.svc.EventsAfter(ctx, te.tenant, te.id, after, eventsBatchMax)
}

func (te *taskEvents) sent(e commonops.Event) { te.terminal = te.terminal || endsTask(e) }

func (te *taskEvents) end(ctx context.Context) (string, bool, error) {
	if !te.terminal && !te.t.Status.Terminal() {
		return "", false, nil
	}
	if !te.t.Status.Terminal() { // confirm: a retry may have reopened it since
		t, err := te.s.svc.Get(ctx, te.tenant, te.id)
		if err != nil {
			return "", false, err
		}
		te.t = t
	}
	if te.t.Status.Terminal() {
		return fmt.Sprintf(`{"status":%q}`, te.t.Status), true, nil
	}
	te.terminal = false
	return "", false, nil
}

// subscribe subscribes to the feed, starting the server's own feed at the
// first stream when Config.Feed was not given.
func (s *server) subscribe(ctx context.Context, f feed.Filter) (*feed.Subscription, error) {
	if s.ownFeed {
		s.feedOnce.Do(func() {
			s.feed.Start(context.Background())
			if s.done != nil {
				go func() { <-s.done; s.feed.Stop() }()
			}
		})
	}
	ctx, cancel := context.WithTimeout(ctx, streamSubscribeTimeout)
	defer cancel()
	return s.feed.Subscribe(ctx, f, s.buffer)
}

// writeEvent writes e as one Server-Sent Event.
func writeEvent(w io.Writer, e commonops.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", e.ID, err)
	}
	_, err = fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.ID, data)
	return err
}

// endsTask reports whether e moved its task to a terminal status.
func endsTask(e commonops.Event) bool {
	var d struct {
		To commonops.Status `json:"to"`
	}
	return json.Unmarshal(e.EventData, &d) == nil && d.To.Terminal()
}

// streamCounts enforces the caps on open event streams.
type streamCounts struct {
	max, maxTenant int
	mu             sync.Mutex
	total          int
	byTenant       map[string]int
}

// acquire counts one more stream of tenant and returns its release, or
// nil and why when a cap is reached.
func (c *streamCounts) acquire(tenant string) (release func(), refused string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.total >= c.max:
		return nil, fmt.Sprintf("this server has %d event streams open, its limit; try again later", c.max)
	case c.byTenant[tenant] >= c.maxTenant:
		return nil, fmt.Sprintf("the tenant has %d event streams open, its limit; close one or try again later", c.maxTenant)
	}
	if c.byTenant == nil {
		c.byTenant = map[string]int{}
	}
	c.total++
	c.byTenant[tenant]++
	return sync.OnceFunc(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.total--
		if c.byTenant[tenant]--; c.byTenant[tenant] == 0 {
			delete(c.byTenant, tenant)
		}
	}), ""
}
