package bulk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/worker"
)

// httpSource pages through a JSON endpoint with GET. With paging=cursor it
// sends ?cursor=<the previous page's cursorField>&limit=n until the cursor
// is empty; with paging=page it sends ?page=1,2,...&pageSize=n until a page
// comes back short. Scalar task params are sent as query parameters too.
type httpSource struct {
	cfg    *SourceConfig
	client *http.Client
}

func newHTTPSource(cfg *SourceConfig) *httpSource {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = HTTPTimeoutDefault
	}
	return &httpSource{cfg: cfg, client: &http.Client{Timeout: timeout}}
}

func (s *httpSource) Close() error { s.client.CloseIdleConnections(); return nil }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *httpSource) get(ctx context.Context, params map[string]any, extra url.Values) (map[string]json.RawMessage, error) {
	u, err := url.Parse(s.cfg.URL)
	if err != nil {
		return nil, worker.Permanent(fmt.Errorf("export source url: %w", err))
	}
	q := u.Query()
	for k, v := range params {
		switch v.(type) {
		case string, float64, bool, json.Number:
			q.Set(k, formatValue(v))
		}
	}
	for k, v := range extra {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, worker.Permanent(fmt.Errorf("export source request: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, unavailable("the export source", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, unavailable("the export source", fmt.Errorf("GET %s: %s: %s", s.cfg.URL, resp.Status, snippet(b)))
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, worker.Permanent(commonops.Errorf(commonops.EINVALID, "the export source answered %s: %s", resp.Status, snippet(b)))
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, worker.Permanent(commonops.Errorf(commonops.EINVALID, "the export source answered something other than a JSON object: %v", err))
	}
	return body, nil
}

func (s *httpSource) items(body map[string]json.RawMessage) ([]Record, error) {
	var recs []Record
	raw := body[orDefault(s.cfg.ItemsField, "items")]
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytesReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&recs); err != nil {
		return nil, worker.Permanent(commonops.Errorf(commonops.EINVALID, "the export source's %s is not a list of objects: %v", orDefault(s.cfg.ItemsField, "items"), err))
	}
	return recs, nil
}

func (s *httpSource) Count(ctx context.Context, params map[string]any) (int64, bool, error) {
	extra := url.Values{"limit": {"1"}}
	if s.cfg.Paging == "page" {
		extra = url.Values{"page": {"1"}, "pageSize": {"1"}}
	}
	body, err := s.get(ctx, params, extra)
	if err != nil {
		return 0, false, err
	}
	var n int64
	if raw, ok := body[orDefault(s.cfg.TotalField, "total")]; ok && json.Unmarshal(raw, &n) == nil {
		return n, true, nil
	}
	return 0, false, nil
}

func (s *httpSource) Read(ctx context.Context, params map[string]any, page func([]Record) error) error {
	size := pageSize(s.cfg.PageSize)
	cursor := ""
	for n := 1; ; n++ {
		extra := url.Values{"limit": {strconv.Itoa(size)}}
		if s.cfg.Paging == "page" {
			extra = url.Values{"page": {strconv.Itoa(n)}, "pageSize": {strconv.Itoa(size)}}
		} else if cursor != "" {
			extra.Set("cursor", cursor)
		}
		body, err := s.get(ctx, params, extra)
		if err != nil {
			return err
		}
		recs, err := s.items(body)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			if err := page(recs); err != nil {
				return err
			}
		}
		if s.cfg.Paging == "page" {
			if len(recs) < size {
				return nil
			}
			continue
		}
		cursor = ""
		if raw, ok := body[orDefault(s.cfg.CursorField, "nextCursor")]; ok {
			_ = json.Unmarshal(raw, &cursor)
		}
		if cursor == "" || len(recs) == 0 {
			return nil
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
