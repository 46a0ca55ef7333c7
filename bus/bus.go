// Package bus is the embedded, in-process pub/sub of a single-machine
// commonops: the outbox relay publishes to it and the local worker and event
// stream listeners subscribe to it.
//
// Delivery is best effort by design. Each subscriber has its own bounded
// queue and goroutine, so a slow subscriber never blocks the relay or the
// other subscribers; when a queue is full the message is dropped for that
// subscriber and counted (Dropped, commonops_bus_dropped_total). Nothing is
// lost for good by a drop: the task row is the truth, and the worker's
// fallback poller claims any runnable task that no event started.
package bus

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/outbox"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueSizeDefault is the default length of each subscriber's queue.
const QueueSizeDefault = 1024

// Message is one event as a subscriber sees it. ID is the outbox row id as a
// decimal string (the CloudEvent id in Dapr mode), so the same dedupe code
// serves both.
type Message struct {
	ID    string
	Topic string
	// Task is the task as committed with the event: what its outbox row
	// carries, with the stores app.OpenStore opens for this bus only its
	// header (commonops.Task.AppendHeaderJSON) unless the change notifies
	// webhooks. Each subscriber gets its own copy.
	Task *commonops.Task
	// TraceParent is the W3C trace context the event was committed under,
	// if any.
	TraceParent string
}

// Option configures a Bus.
type Option func(*Bus)

// WithQueueSize sets each subscriber's queue length. Defaults to 1024.
func WithQueueSize(n int) Option {
	return func(b *Bus) {
		if n > 0 {
			b.queueSize = n
		}
	}
}

// WithLogger sets where handler errors and undecodable messages are logged.
// Defaults to slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(b *Bus) {
		if l != nil {
			b.log = l
		}
	}
}

// WithRegisterer registers the bus metrics (commonops_bus_delivered_total,
// commonops_bus_dropped_total). Defaults to none.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(b *Bus) { b.reg = r }
}

// Bus fans published messages out to subscribers of their topics. It
// implements outbox.Publisher. The zero value is not usable; call New.
type Bus struct {
	queueSize int
	log       *slog.Logger
	reg       prometheus.Registerer

	mu   sync.RWMutex
	subs []*subscriber

	dropped      atomic.Int64
	droppedTotal prometheus.Counter
	delivered    prometheus.Counter
}

type subscriber struct {
	topics []string // nil: every topic
	fn     func(context.Context, Message) error
	queue  chan Message
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *subscriber) wants(topic string) bool {
	return s.topics == nil || slices.Contains(s.topics, topic)
}

// New returns an empty bus.
func New(opts ...Option) *Bus {
	b := &Bus{queueSize: QueueSizeDefault, log: slog.Default()}
	for _, o := range opts {
		o(b)
	}
	b.droppedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "commonops_bus_dropped_total",
		Help: "Embedded bus messages dropped because a subscriber's queue was full (the fallback poller covers them).",
	})
	b.delivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "commonops_bus_delivered_total",
		Help: "Embedded bus messages handed to subscriber queues.",
	})
	if b.reg != nil {
		for _, c := range []prometheus.Collector{b.droppedTotal, b.delivered} {
			if err := b.reg.Register(c); err != nil {
				b.log.Warn("bus: register metric", "err", err)
			}
		}
	}
	return b
}

// Subscribe calls fn, one message at a time and in publish order, for every
// message on one of topics (nil or empty topics: every topic). fn runs on the
// subscriber's own goroutine; its error is logged and the message is not
// redelivered. The returned func unsubscribes: it cancels the context fn
// gets, waits for a running fn to return and discards what is queued.
func (b *Bus) Subscribe(topics []string, fn func(ctx context.Context, m Message) error) (unsubscribe func()) {
	return b.SubscribeConcurrent(topics, 1, fn)
}

// SubscribeConcurrent is Subscribe with up to n calls of fn at a time, on n
// goroutines of the subscriber's own, so messages are handled in no set
// order: for a subscriber whose messages are independent hints, as the
// worker pool's are, one slow fn (a claim waiting for the database) does
// not hold back the messages behind it. Unsubscribing waits for every
// running fn.
func (b *Bus) SubscribeConcurrent(topics []string, n int, fn func(ctx context.Context, m Message) error) (unsubscribe func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{
		fn:     fn,
		queue:  make(chan Message, b.queueSize),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	if len(topics) > 0 {
		s.topics = slices.Clone(topics)
	}
	b.mu.Lock()
	b.subs = append(b.subs, s)
	b.mu.Unlock()
	var serving sync.WaitGroup
	for range max(n, 1) {
		serving.Go(func() { b.serve(s) })
	}
	go func() {
		serving.Wait()
		close(s.done)
	}()

	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.subs = slices.DeleteFunc(b.subs, func(x *subscriber) bool { return x == s })
			b.mu.Unlock()
			cancel()
			<-s.done
		})
	}
}

func (b *Bus) serve(s *subscriber) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case m := <-s.queue:
			if s.ctx.Err() != nil {
				return // unsubscribed meanwhile: what is queued is discarded
			}
			if err := s.fn(s.ctx, m); err != nil && s.ctx.Err() == nil {
				b.log.Warn("bus: subscriber failed", "topic", m.Topic, "id", m.ID, "err", err)
			}
		}
	}
}

// Publish implements outbox.Publisher: it decodes each message's task and
// queues it for every subscriber of its topic, never waiting for one. It
// always reports every message published: a message whose payload is not a
// task is logged and skipped (republishing it could never succeed), and a
// full queue drops the message for that subscriber only.
func (b *Bus) Publish(ctx context.Context, msgs []outbox.Message) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, om := range msgs {
		var targets []*subscriber
		for _, s := range b.subs {
			if s.wants(om.Topic) {
				targets = append(targets, s)
			}
		}
		if len(targets) == 0 {
			continue
		}
		var task commonops.Task
		if err := json.Unmarshal(om.Payload, &task); err != nil {
			b.log.Error("bus: outbox payload is not a task; skipped", "id", om.ID, "topic", om.Topic, "err", err)
			continue
		}
		id := strconv.FormatInt(om.ID, 10)
		// Copy before the first send: a subscriber may change its task.
		tasks := make([]*commonops.Task, len(targets))
		for i := range targets {
			tasks[i] = task.Clone()
		}
		for i, s := range targets {
			select {
			case s.queue <- Message{ID: id, Topic: om.Topic, Task: tasks[i], TraceParent: om.TraceParent}:
				b.delivered.Inc()
			default:
				b.dropped.Add(1)
				b.droppedTotal.Inc()
			}
		}
	}
	return len(msgs), nil
}

// Dropped returns how many messages were dropped on full queues since New.
func (b *Bus) Dropped() int64 { return b.dropped.Load() }
