package bulk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/worker"
)

// Backoff bounds of the HTTP sink and source between retries.
const (
	BackoffDefault = 500 * time.Millisecond
	BackoffMax     = 30 * time.Second
)

type httpSink struct {
	cfg     *SinkConfig
	client  *http.Client
	backoff time.Duration
}

func newHTTPSink(cfg *SinkConfig) *httpSink {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = HTTPTimeoutDefault
	}
	backoff := cfg.Backoff
	if backoff <= 0 {
		backoff = BackoffDefault
	}
	return &httpSink{cfg: cfg, client: &http.Client{Timeout: timeout}, backoff: backoff}
}

func (s *httpSink) Close() error { s.client.CloseIdleConnections(); return nil }

type sinkResponse struct {
	Errors []RecordError `json:"errors"`
}

func (s *httpSink) retries() int {
	switch {
	case s.cfg.Retries < 0:
		return 0
	case s.cfg.Retries == 0:
		return RetriesDefault
	}
	return s.cfg.Retries
}

// Write POSTs {"records": batch}. A 5xx, a 429 or a network error is retried
// with exponential backoff and jitter (honouring Retry-After); a 2xx or a 4xx
// may list refused records as {"errors": [{"index", "message"}]}; any other
// 4xx fails the task for good (the sink refuses what we send).
func (s *httpSink) Write(ctx context.Context, batch []Record) ([]RecordError, error) {
	body, err := json.Marshal(map[string]any{"records": batch})
	if err != nil {
		return nil, worker.Permanent(fmt.Errorf("encode batch: %w", err))
	}
	var last error
	for try := 0; try <= s.retries(); try++ {
		if try > 0 {
			if err := sleep(ctx, retryDelay(s.backoff, try, last)); err != nil {
				return nil, err
			}
		}
		recErrs, retry, err := s.post(ctx, body, len(batch))
		if err == nil {
			return recErrs, nil
		}
		if !retry || ctx.Err() != nil {
			return nil, err
		}
		last = err
	}
	return nil, unavailable("the import sink "+s.cfg.URL, last)
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

func (s *httpSink) post(ctx context.Context, body []byte, n int) ([]RecordError, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, false, worker.Permanent(fmt.Errorf("sink request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, true, fmt.Errorf("post batch: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, true, fmt.Errorf("read sink answer: %w", err)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		err := fmt.Errorf("sink answered %s: %s", resp.Status, snippet(b))
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
			return nil, true, &retryAfterError{err: err, after: time.Duration(secs) * time.Second}
		}
		return nil, true, err
	}
	var sr sinkResponse
	parsed := len(bytes.TrimSpace(b)) > 0 && json.Unmarshal(b, &sr) == nil
	if resp.StatusCode >= 300 && (!parsed || len(sr.Errors) == 0) {
		return nil, false, worker.Permanent(&commonops.Error{Code: commonops.EINVALID,
			Message: fmt.Sprintf("the import sink refused the batch: %s: %s", resp.Status, snippet(b))})
	}
	for _, re := range sr.Errors {
		if re.Index < 0 || re.Index >= n {
			return nil, false, worker.Permanent(fmt.Errorf("the import sink reported an error for record %d of a batch of %d", re.Index, n))
		}
	}
	return sr.Errors, false, nil
}

func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// retryDelay is base·2^(try-1) with ±25% jitter, at most BackoffMax, or the
// server's Retry-After when it asked for one.
func retryDelay(base time.Duration, try int, last error) time.Duration {
	var ra *retryAfterError
	if errors.As(last, &ra) {
		return min(ra.after, BackoffMax)
	}
	d := base << min(try-1, 20)
	if d <= 0 || d > BackoffMax {
		d = BackoffMax
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
