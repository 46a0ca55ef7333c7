// Package dapr connects commonops to a Dapr sidecar over its HTTP API: a
// Publisher that the outbox relay uses to publish task events as CloudEvents
// 1.0, and a Subscriber, the http.Handler that receives them back (programmatic
// subscriptions at /dapr/subscribe).
//
// Delivery is at least once end to end. The CloudEvent id is the outbox row
// id, so the Subscriber dedupes redeliveries, and the worker's claim decides
// whether a task runs, so a duplicate never runs a task twice.
//
// Dapr's own retries decide what RETRY means: with no resiliency policy, a
// subscription that has a dead-letter topic sends a RETRY answer straight to
// that topic. Deployments (and internal/daprtest) therefore give the pub/sub
// component an inbound resiliency policy with a bounded retry, after which the
// event goes to the dead-letter topic: never an endless retry storm.
package dapr

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/outbox"
)

// Defaults of PublisherConfig.
const (
	PubSubNameDefault  = "pubsub"
	HTTPPortDefault    = "3500"
	ConcurrencyDefault = 16
	// RequestTimeoutDefault bounds one publish call of the default client.
	RequestTimeoutDefault = 10 * time.Second
)

// Source is the CloudEvent source of every event commonops publishes.
const Source = "commonops"

// PublisherConfig configures a Publisher. The zero value publishes to the
// local sidecar.
type PublisherConfig struct {
	// BaseURL is the sidecar's HTTP address. Defaults to
	// http://127.0.0.1:$DAPR_HTTP_PORT, or http://127.0.0.1:3500.
	BaseURL string
	// PubSubName is the pub/sub component's name. Defaults to "pubsub".
	PubSubName string
	// HTTPClient makes the calls. Defaults to a client with a 10s timeout that
	// keeps enough idle connections for Concurrency.
	HTTPClient *http.Client
	// Concurrency is how many events (or, with Bulk, bulk requests) of one
	// batch are published in parallel. Defaults to 16.
	Concurrency int
	// Bulk publishes a batch with Dapr's bulk publish API
	// (/v1.0-alpha1/publish/bulk), one request per topic and chunk of at most
	// BulkEntriesMax events or BulkBytesMax bytes, instead of one request per
	// event. A bulk request carries no traceparent header (it holds events
	// of many traces), only each event's traceparent attribute. Defaults to
	// false.
	Bulk bool
	// APIToken is the sidecar's DAPR_API_TOKEN: when set, every call to
	// the sidecar (publishes and health checks) carries it as
	// dapr-api-token, without which such a sidecar refuses them. Defaults
	// to "": no token.
	APIToken string
	// BroadcastPubSubName, when set, is the component the BroadcastTopics
	// are published to instead of PubSubName: one that gives every replica
	// a consumer group of its own (deploy/dapr/broadcast.yaml), so a
	// cancel reaches the replica running the task. Defaults to "": every
	// topic goes to PubSubName.
	BroadcastPubSubName string
}

// BroadcastTopics are the topics every replica must receive, not just one
// of them: a cancelled task runs on one replica, and only that one can stop
// it. They go to the broadcast component when one is configured.
var BroadcastTopics = []string{commonops.TopicCancelled}

// APITokenHeader carries PublisherConfig.APIToken.
const APITokenHeader = "dapr-api-token"

// Bounds of one bulk publish request (daprd refuses bodies over 4 MiB).
const (
	BulkEntriesMax = 100
	BulkBytesMax   = 1 << 20
)

// DefaultBaseURL returns the sidecar address from getenv (DAPR_HTTP_PORT), as
// Dapr's SDKs do.
func DefaultBaseURL(getenv func(string) string) string {
	port := HTTPPortDefault
	if p := strings.TrimSpace(getenv("DAPR_HTTP_PORT")); p != "" {
		port = p
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port)
}

// Publisher publishes outbox messages to Dapr; it implements
// outbox.Publisher. It is safe for concurrent use.
type Publisher struct {
	base   string
	pubsub string
	client *http.Client
	conc   int
	bulk   bool
	token  string
	// broadcast is BroadcastPubSubName; "" for none.
	broadcast string
}

// NewPublisher returns a Publisher for cfg.
func NewPublisher(cfg PublisherConfig) *Publisher {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL(os.Getenv)
	}
	if cfg.PubSubName == "" {
		cfg.PubSubName = PubSubNameDefault
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = ConcurrencyDefault
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 2 * cfg.Concurrency
		tr.MaxIdleConnsPerHost = 2 * cfg.Concurrency
		cfg.HTTPClient = &http.Client{Transport: tr, Timeout: RequestTimeoutDefault}
	}
	return &Publisher{
		base:   strings.TrimRight(cfg.BaseURL, "/"),
		pubsub: cfg.PubSubName,
		client: cfg.HTTPClient,
		conc:   cfg.Concurrency,
		bulk:   cfg.Bulk,
		token:  cfg.APIToken,

		broadcast: cfg.BroadcastPubSubName,
	}
}

// component is the pub/sub component topic is published to.
func (p *Publisher) component(topic string) string {
	if p.broadcast != "" && slices.Contains(BroadcastTopics, topic) {
		return p.broadcast
	}
	return p.pubsub
}

// CloudEvent is the CloudEvents 1.0 envelope commonops publishes and
// receives (JSON structured mode). Data holds the task JSON.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	DataBase64      string          `json:"data_base64,omitempty"`
	TraceParent     string          `json:"traceparent,omitempty"`
	// Topic and PubSubName are added by Dapr on delivery.
	Topic      string `json:"topic,omitempty"`
	PubSubName string `json:"pubsubname,omitempty"`
}

// Envelope returns the CloudEvent for an outbox message. Its TraceParent
// extension is the message's (the W3C traceparent of the request that made
// the change), empty when the message has none.
func Envelope(m outbox.Message) CloudEvent {
	ce := CloudEvent{
		SpecVersion:     "1.0",
		ID:              strconv.FormatInt(m.ID, 10),
		Type:            m.Topic,
		Source:          Source,
		Subject:         m.TaskID,
		DataContentType: "application/json",
		Data:            m.Payload,
		TraceParent:     m.TraceParent,
	}
	if !m.CreatedAt.IsZero() {
		ce.Time = m.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	return ce
}

// Publish publishes msgs concurrently (Concurrency at a time) and returns the
// length of the longest prefix of msgs that all succeeded, with the first
// failure's error. Events after a failure may have been published too; they
// are offered again and consumers dedupe them on id.
func (p *Publisher) Publish(ctx context.Context, msgs []outbox.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if p.bulk {
		return p.publishBulk(ctx, msgs)
	}
	if len(msgs) == 1 || p.conc == 1 {
		for i, m := range msgs {
			if err := p.publishOne(ctx, m); err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	// The first event goes alone, as a probe: while the sidecar is down or
	// still starting it fails, and nothing else of the batch is sent. Sent
	// concurrently, later events could get through while an earlier one
	// failed; they are outside the published prefix and would be sent again.
	if err := p.publishOne(ctx, msgs[0]); err != nil {
		return 0, err
	}
	n, err := p.publishConcurrently(ctx, msgs[1:])
	return 1 + n, err
}

// publishConcurrently publishes msgs with up to Concurrency requests at once
// and returns the length of the prefix that was published.
func (p *Publisher) publishConcurrently(ctx context.Context, msgs []outbox.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstBad = len(msgs) // lowest failed index so far
		firstErr error
		wg       sync.WaitGroup
	)
	failedBefore := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		return firstBad < i
	}
	for range min(p.conc, len(msgs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(msgs) || failedBefore(i) {
					// Later events no longer count toward the prefix.
					return
				}
				if err := p.publishOne(ctx, msgs[i]); err != nil {
					mu.Lock()
					if i < firstBad {
						firstBad, firstErr = i, err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return firstBad, firstErr
}

func (p *Publisher) publishOne(ctx context.Context, m outbox.Message) error {
	body, err := json.Marshal(Envelope(m))
	if err != nil {
		return fmt.Errorf("publish %d to %s: encode: %w", m.ID, m.Topic, err)
	}
	u := p.base + "/v1.0/publish/" + url.PathEscape(p.component(m.Topic)) + "/" + url.PathEscape(m.Topic)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("publish %d to %s: %w", m.ID, m.Topic, err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	p.authorize(req)
	if m.TraceParent != "" {
		// daprd continues the trace of the request's traceparent and writes
		// its own span into the delivered event's traceparent.
		req.Header.Set("traceparent", m.TraceParent)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "pub/sub sidecar unreachable",
			Err: fmt.Errorf("publish %d to %s: %w", m.ID, m.Topic, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "pub/sub sidecar refused an event",
		Err: fmt.Errorf("publish %d to %s: sidecar answered %s: %s", m.ID, m.Topic, resp.Status, bytes.TrimSpace(msg))}
}

// Check reports whether the sidecar is healthy (GET /v1.0/healthz answers
// 204); it serves the pubsub health check.
func (p *Publisher) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/v1.0/healthz", nil)
	if err == nil {
		p.authorize(req)
	}
	if err != nil {
		return fmt.Errorf("check dapr sidecar: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "pub/sub sidecar unreachable",
			Err: fmt.Errorf("check dapr sidecar: %w", err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusNoContent {
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "pub/sub sidecar unhealthy",
			Err: fmt.Errorf("check dapr sidecar: answered %s", resp.Status)}
	}
	return nil
}

type bulkEntry struct {
	EntryID     string          `json:"entryId"`
	Event       json.RawMessage `json:"event"`
	ContentType string          `json:"contentType"`
}

type bulkChunk struct {
	topic   string
	index   []int // positions in the batch
	entries []bulkEntry
	size    int
}

// publishBulk publishes msgs with the bulk API and returns the longest
// prefix of msgs that the sidecar accepted.
func (p *Publisher) publishBulk(ctx context.Context, msgs []outbox.Message) (int, error) {
	var chunks []*bulkChunk
	open := map[string]*bulkChunk{}
	for i, m := range msgs {
		ev, err := json.Marshal(Envelope(m))
		if err != nil {
			return i, fmt.Errorf("publish %d to %s: encode: %w", m.ID, m.Topic, err)
		}
		c := open[m.Topic]
		if c == nil || len(c.entries) >= BulkEntriesMax || c.size+len(ev) > BulkBytesMax {
			c = &bulkChunk{topic: m.Topic}
			open[m.Topic] = c
			chunks = append(chunks, c)
		}
		c.index = append(c.index, i)
		c.entries = append(c.entries, bulkEntry{EntryID: strconv.Itoa(i), Event: ev, ContentType: "application/cloudevents+json"})
		c.size += len(ev)
	}

	var (
		mu       sync.Mutex
		firstBad = len(msgs)
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, p.conc)
	)
	for _, c := range chunks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			failed, err := p.postBulk(ctx, c)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, i := range failed {
				if i < firstBad {
					firstBad, firstErr = i, err
				}
			}
		})
	}
	wg.Wait()
	return firstBad, firstErr
}

// postBulk sends one chunk and returns the batch positions that failed.
func (p *Publisher) postBulk(ctx context.Context, c *bulkChunk) ([]int, error) {
	body, err := json.Marshal(c.entries)
	if err != nil {
		return c.index, fmt.Errorf("bulk publish to %s: encode: %w", c.topic, err)
	}
	u := p.base + "/v1.0-alpha1/publish/bulk/" + url.PathEscape(p.component(c.topic)) + "/" + url.PathEscape(c.topic)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return c.index, fmt.Errorf("bulk publish to %s: %w", c.topic, err)
	}
	req.Header.Set("Content-Type", "application/json")
	p.authorize(req)
	resp, err := p.client.Do(req)
	if err != nil {
		return c.index, &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "pub/sub sidecar unreachable",
			Err: fmt.Errorf("bulk publish %d events to %s: %w", len(c.entries), c.topic, err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return nil, nil
	}
	var res struct {
		FailedEntries []struct {
			EntryID string `json:"entryId"`
			Error   string `json:"error"`
		} `json:"failedEntries"`
	}
	_ = json.Unmarshal(raw, &res)
	var failed []int
	for _, f := range res.FailedEntries {
		if i, err := strconv.Atoi(f.EntryID); err == nil {
			failed = append(failed, i)
		}
	}
	if len(failed) == 0 {
		failed = c.index // without a usable list of failed entries, all failed
	}
	return failed, &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "pub/sub sidecar refused events",
		Err: fmt.Errorf("bulk publish %d events to %s: sidecar answered %s: %s", len(c.entries), c.topic, resp.Status, bytes.TrimSpace(raw[:min(len(raw), 1<<10)]))}
}

// authorize adds the sidecar's API token to req, when there is one.
func (p *Publisher) authorize(req *http.Request) {
	if p.token != "" {
		req.Header.Set(APITokenHeader, p.token)
	}
}
