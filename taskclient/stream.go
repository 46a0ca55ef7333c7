package taskclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/workerclient"
)

// ReconnectLimit is how many connection attempts in a row Follow makes
// before it gives up on a stream it cannot reopen.
const ReconnectLimit = 5

// ReconnectDelayDefault is the wait before reopening a dropped stream when
// the server gave no "retry:" hint.
const ReconnectDelayDefault = time.Second

// reconnectDelayMax caps the server's "retry:" hint.
const reconnectDelayMax = 30 * time.Second

// maxEventLine bounds one line of the event stream.
const maxEventLine = 1 << 20

// Follow reads the task's live event stream (Server-Sent Events) and calls
// fn with each event after the event id after (0: from the start), in
// order, until the server ends the stream on the task's terminal status,
// which it returns. A dropped stream or a "resync" reopens it with
// Last-Event-ID, so no event is missed or repeated; ReconnectLimit failed
// attempts in a row, an API refusal other than 429 or 5xx, or an error of
// fn end Follow with that error.
func (c *Client) Follow(ctx context.Context, id string, after int64, fn func(commonops.Event) error) (commonops.Status, error) {
	failures := 0
	for {
		r := c.streamOnce(ctx, id, after, fn)
		if r.last > after {
			after = r.last
		}
		switch {
		case r.ended:
			return r.status, nil
		case r.fatal:
			return "", r.err
		case ctx.Err() != nil:
			return "", fmt.Errorf("follow task %s: %w", id, ctx.Err())
		}
		if r.opened {
			failures = 0
		} else if failures++; failures >= ReconnectLimit {
			return "", fmt.Errorf("follow task %s: %d attempts in a row failed: %w", id, failures, r.err)
		}
		delay := r.retry
		if delay <= 0 {
			delay = ReconnectDelayDefault
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("follow task %s: %w", id, ctx.Err())
		case <-time.After(min(delay, reconnectDelayMax)):
		}
	}
}

// streamResult is how one connection of Follow ended.
type streamResult struct {
	opened bool             // the server answered 200
	last   int64            // id of the last event passed to fn
	ended  bool             // the server sent "end": status is final
	status commonops.Status // the task's terminal status
	retry  time.Duration    // the server's reconnection hint
	fatal  bool             // err must not be retried
	err    error
}

// streamOnce opens the stream once and reads it to its end.
func (c *Client) streamOnce(ctx context.Context, id string, after int64, fn func(commonops.Event) error) (r streamResult) {
	h := http.Header{"Accept": {"text/event-stream"}}
	if after > 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	req, err := c.request(ctx, http.MethodGet, taskPath(id, "/events"), h, nil)
	if err != nil {
		return streamResult{fatal: true, err: err}
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return streamResult{err: fmt.Errorf("follow task %s: %w", id, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := workerclient.DecodeError(resp)
		var e *workerclient.Error
		retryable := errors.As(err, &e) && (e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500)
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil {
			r.retry = time.Duration(s) * time.Second
		}
		r.fatal, r.err = !retryable, fmt.Errorf("follow task %s: %w", id, err)
		return r
	}
	r.opened = true
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	var kind, data string
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				kind = value
			case "data":
				if data != "" {
					data += "\n"
				}
				data += value
			case "retry":
				if ms, err := strconv.Atoi(value); err == nil {
					r.retry = time.Duration(ms) * time.Millisecond
				}
			}
			continue // "id" is in the data too; "" is a comment
		}
		switch kind {
		case "", "message":
			if data != "" {
				var e commonops.Event
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					return streamResult{fatal: true, err: fmt.Errorf("follow task %s: decode event %q: %w", id, data, err)}
				}
				if e.ID > after {
					if err := fn(e); err != nil {
						r.fatal, r.err = true, err
						return r
					}
					after, r.last = e.ID, e.ID
				}
			}
		case "end":
			var end struct {
				Status commonops.Status `json:"status"`
			}
			if err := json.Unmarshal([]byte(data), &end); err != nil {
				return streamResult{fatal: true, err: fmt.Errorf("follow task %s: decode end %q: %w", id, data, err)}
			}
			r.ended, r.status = true, end.Status
			return r
		case "resync":
			r.err = fmt.Errorf("follow task %s: the server asked to resync", id)
			return r
		}
		kind, data = "", ""
	}
	r.err = fmt.Errorf("follow task %s: the stream closed before the task ended", id)
	if err := sc.Err(); err != nil {
		r.err = fmt.Errorf("follow task %s: %w", id, err)
	}
	return r
}
