package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/commonops/commonops"
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
// live Server-Sent Events stream (see stream).
func handleEvents(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		id, err := taskID(r)
		if err != nil {
			return err
		}
		q := newQuery(r)
		after := int64(q.int("after", 0, 0, math.MaxInt))
		limit := q.int("limit", eventsBatchMax, 1, eventsBatchMax)
		sse := wantsStream(r)
		if last := strings.TrimSpace(r.Header.Get("Last-Event-ID")); sse && last != "" {
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				q.fail("Last-Event-ID", "must be the id of an event")
			}
			after = max(after, n)
		}
		if err := q.err(); err != nil {
			return err
		}
		tenant := info(r).tenant
		if sse {
			return s.stream(w, r, tenant, id, after)
		}
		events, err := s.svc.Events(r.Context(), tenant, id, after, limit)
		if err != nil {
			return err
		}
		if events == nil {
			events = []commonops.Event{}
		}
		s.writeJSON(w, r, http.StatusOK, eventsPage{Events: events})
		return nil
	})
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

// stream sends the task's events after `after` as Server-Sent Events, then
// polls every s.poll and sends new ones as they are committed.
// Each event is a default ("message") event whose id: is the event id (so a
// reconnecting EventSource resumes through Last-Event-ID) and whose data is
// the event JSON. A comment line goes out after StreamHeartbeat of silence.
// Once the task is terminal and its events are sent, a final "end" event
// carrying the task's status closes the stream: a client should then stop
// rather than reconnect.
func (s *server) stream(w http.ResponseWriter, r *http.Request, tenant, id string, after int64) error {
	ctx := r.Context()
	if _, err := s.svc.Get(ctx, tenant, id); err != nil {
		return err // before any byte is sent: still a problem response
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's WriteTimeout; not every writer supports it
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", s.poll.Milliseconds()*4); err != nil {
		return nil
	}
	_ = rc.Flush()

	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	lastWrite := time.Now()
	for {
		// Read the task before its events: the event of the change that made
		// it terminal was committed with it, so it is in the read that follows.
		t, err := s.svc.Get(ctx, tenant, id)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "event stream ended", "request_id", info(r).id, "task", id, "err", err)
			}
			return nil // headers are sent; the stream simply ends
		}
		for {
			events, err := s.svc.EventsAfter(ctx, tenant, id, after, eventsBatchMax)
			if err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "event stream ended", "request_id", info(r).id, "task", id, "err", err)
				}
				return nil
			}
			for _, e := range events {
				data, err := json.Marshal(e)
				if err != nil {
					return fmt.Errorf("encode event %d: %w", e.ID, err)
				}
				if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.ID, data); err != nil {
					return nil
				}
				after = e.ID
				lastWrite = time.Now()
			}
			if len(events) < eventsBatchMax {
				break
			}
		}
		if t.Status.Terminal() {
			_, _ = fmt.Fprintf(w, "event: end\ndata: {\"status\":%q}\n\n", t.Status)
			_ = rc.Flush()
			return nil
		}
		if time.Since(lastWrite) >= StreamHeartbeat {
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			lastWrite = time.Now()
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case <-ticker.C:
		}
	}
}
