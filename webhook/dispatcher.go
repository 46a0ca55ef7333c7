package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/startstop"
)

// Queue is the webhook deliveries as the dispatcher needs them; store.Store
// provides it.
type Queue interface {
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*commonops.Delivery, error)
	RecordDeliveryAttempt(ctx context.Context, d *commonops.Delivery) error
}

// Defaults of Config.
const (
	// TimeoutDefault bounds one POST, connecting included.
	TimeoutDefault = 10 * time.Second
	// ConcurrencyDefault is how many POSTs one dispatcher has in flight.
	ConcurrencyDefault = 16
	// PollIntervalDefault is how often a dispatcher looks for due
	// deliveries without a signal (retries coming due, other replicas'
	// commits).
	PollIntervalDefault = time.Second
	// RetryFirst and RetryMax shape the backoff between attempts:
	// RetryFirst doubled after each failure, at most RetryMax.
	RetryFirst = 5 * time.Second
	RetryMax   = time.Hour
	// GiveUpAfter is how long after its terminal status a delivery is
	// retried; the last attempt is the last one due before then.
	GiveUpAfter = 24 * time.Hour
)

// Source is the CloudEvent source of every delivery.
const Source = "commonops"

// Config configures a Dispatcher. Zero fields take their defaults.
type Config struct {
	// Secret is the service secret the tenants' keys derive from
	// (TenantKey). Required.
	Secret string
	// Guard decides which addresses may be dialled. Defaults to the zero
	// Guard (no internal address).
	Guard *Guard
	// Timeout bounds each POST. Defaults to TimeoutDefault (10s).
	Timeout time.Duration
	// Concurrency bounds the POSTs in flight. Defaults to
	// ConcurrencyDefault (16).
	Concurrency int
	// PollInterval is the fallback poll. Defaults to PollIntervalDefault
	// (1s).
	PollInterval time.Duration
	// Signal, when set, gives the dispatcher a wake-up after commits that
	// may have written deliveries. Defaults to none (the poll only).
	Signal func() (<-chan struct{}, func())
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, when set, registers the dispatcher's metrics
	// (commonops_webhook_*). Defaults to none.
	Registerer prometheus.Registerer
}

// Dispatcher POSTs due deliveries, signed, and records each attempt. Every
// process runs one: the store hands each due delivery to one dispatcher at
// a time (a lease), so they share the work across replicas, and a
// dispatcher that dies mid-POST leaves its deliveries to be sent again when
// the lease ends (at least once: receivers dedupe on Webhook-Id).
type Dispatcher struct {
	q      Queue
	cfg    Config
	client *http.Client
	m      *metrics
	life   startstop.Lifecycle
}

// New returns a dispatcher of q's deliveries; Start runs it.
func New(q Queue, cfg Config) *Dispatcher {
	if cfg.Guard == nil {
		cfg.Guard = &Guard{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = TimeoutDefault
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = ConcurrencyDefault
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = PollIntervalDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Dispatcher{q: q, cfg: cfg, client: NewClient(cfg.Guard, cfg.Timeout), m: newMetrics(cfg.Registerer)}
}

// NewClient is the HTTP client of deliveries: it dials through g, uses no
// proxy (a proxy would dial for it, unguarded), follows no redirect (a 3xx
// is the answer, and a failed attempt) and gives up after timeout.
func NewClient(g *Guard, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         g.DialContext,
			Proxy:               nil,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// lease is how long a claimed delivery is held: long enough for its POST.
func (d *Dispatcher) lease() time.Duration { return 2*d.cfg.Timeout + 10*time.Second }

// Start runs the dispatcher until ctx ends or Stop; it returns at once.
func (d *Dispatcher) Start(ctx context.Context) {
	d.life.Start(ctx, d.run)
}

// Stop stops claiming and waits for the POSTs in flight.
func (d *Dispatcher) Stop() { d.life.Stop() }

func (d *Dispatcher) run(ctx context.Context) {
	var signal <-chan struct{}
	if d.cfg.Signal != nil {
		var stop func()
		signal, stop = d.cfg.Signal()
		defer stop()
	}
	slots := make(chan struct{}, d.cfg.Concurrency)
	done := make(chan struct{}, d.cfg.Concurrency)
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	inFlight := 0
	defer func() {
		for ; inFlight > 0; inFlight-- {
			<-done
		}
	}()
	for {
		free := d.cfg.Concurrency - inFlight
		full := false
		if free > 0 {
			ds, err := d.q.ClaimDeliveries(ctx, d.cfg.Now(), d.lease(), free)
			if err != nil && ctx.Err() == nil {
				d.cfg.Logger.Warn("claim webhook deliveries", "err", err)
			}
			for _, del := range ds {
				inFlight++
				slots <- struct{}{}
				go func() {
					defer func() { <-slots; done <- struct{}{} }()
					d.deliver(context.WithoutCancel(ctx), del)
				}()
			}
			full = len(ds) == free
		}
		if full && inFlight < d.cfg.Concurrency {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-done:
			inFlight--
		case <-signal:
		case <-tick.C:
		}
	}
}

// event is the structured CloudEvent a delivery sends.
type event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Body is the CloudEvent (structured mode, JSON) of del: the same bytes on
// every attempt.
func Body(del *commonops.Delivery) ([]byte, error) {
	return json.Marshal(event{
		SpecVersion: "1.0", ID: strconv.FormatInt(del.ID, 10), Source: Source, Type: del.EventType,
		Subject: del.TaskID, Time: del.CreatedAt.UTC(), DataContentType: "application/json", Data: del.Payload,
	})
}

// deliver makes one attempt and records it.
func (d *Dispatcher) deliver(ctx context.Context, del *commonops.Delivery) {
	d.m.inFlight.Inc()
	defer d.m.inFlight.Dec()
	start := d.cfg.Now()
	a := commonops.DeliveryAttempt{Attempt: del.AttemptCount + 1, At: start.UTC().Truncate(time.Microsecond)}
	code, err := d.post(ctx, del, start)
	end := d.cfg.Now()
	a.DurationMs = end.Sub(start).Milliseconds()
	if code != 0 {
		a.StatusCode = &code
	}
	if err != nil {
		msg := err.Error()
		a.Error = &msg
	} else {
		a.OK = true
	}
	del.Record(a, d.next(del, a))
	d.m.attempted(del, a, end)
	if err := d.q.RecordDeliveryAttempt(ctx, del); err != nil {
		d.cfg.Logger.Warn("record webhook attempt", "delivery", del.ID, "task", del.TaskID, "err", err)
	}
}

// next is when a failed attempt a is followed by another, or nil when the
// delivery gives up (or a succeeded).
func (d *Dispatcher) next(del *commonops.Delivery, a commonops.DeliveryAttempt) *time.Time {
	if a.OK {
		return nil
	}
	at := a.At.Add(Backoff(a.Attempt))
	if at.After(del.CreatedAt.Add(GiveUpAfter)) {
		return nil
	}
	return &at
}

// Backoff is the wait after failed attempt n (1 for the first):
// RetryFirst*2^(n-1), at most RetryMax.
func Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 20 {
		return RetryMax
	}
	return min(RetryFirst<<(n-1), RetryMax)
}

// post sends del once and returns the endpoint's status code (0 when none
// came) and why the attempt failed (nil for a 2xx).
func (d *Dispatcher) post(ctx context.Context, del *commonops.Delivery, now time.Time) (int, error) {
	body, err := Body(del)
	if err != nil {
		return 0, fmt.Errorf("encode the event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, del.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("the URL is not usable: %w", err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "commonops-webhook/1")
	req.Header.Set(HeaderID, strconv.FormatInt(del.ID, 10))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(TenantKey(d.cfg.Secret, del.TenantID), now, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, describe(err, d.cfg.Timeout)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, fmt.Errorf("the endpoint answered %d; redirects are not followed (Location: %.200q)", resp.StatusCode, resp.Header.Get("Location"))
	}
	return resp.StatusCode, fmt.Errorf("the endpoint answered %d", resp.StatusCode)
}

// describe turns a client error into the attempt's message.
func describe(err error, timeout time.Duration) error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrRefused):
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			return fmt.Errorf("not sent: %w", oe.Err)
		}
		return fmt.Errorf("not sent: %w", err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer within %s", timeout)
	}
	return err
}
