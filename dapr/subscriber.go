package dapr

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/commonops/commonops"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// DeadLetterTopic receives events that Dapr gave up on.
const DeadLetterTopic = "operations.task.deadletter"

// Defaults of SubscriberConfig.
const (
	BodyLimitDefault  = 4 << 20 // 4 MiB
	DedupeSizeDefault = 10000
)

// AppTokenHeader carries the token Dapr sends the app when the sidecar runs
// with APP_API_TOKEN set.
const AppTokenHeader = "dapr-api-token"

// Dapr's answers to a delivered event.
const (
	StatusSuccess = "SUCCESS" // handled (or a duplicate of a handled event)
	StatusRetry   = "RETRY"   // transient failure: deliver again later
	StatusDrop    = "DROP"    // poison: never deliver again
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// PubSubName is the pub/sub component's name. Defaults to "pubsub".
	PubSubName string
	// BroadcastPubSubName, when set, is the component the BroadcastTopics
	// are subscribed through instead of PubSubName (see
	// PublisherConfig.BroadcastPubSubName). Defaults to "": every topic
	// through PubSubName.
	BroadcastPubSubName string
	// Handle is called once per event id that it handles successfully. A nil
	// error answers SUCCESS; a *commonops.Error with ENOTFOUND, EINVALID,
	// EMALFORMED or ECONFLICT answers DROP (a redelivery would get the same
	// answer: the task is gone, or the claim already decided); any other
	// error answers RETRY. Its ctx carries the event's traceparent
	// (commonops.WithTraceParent) when that is a valid one, so the changes Handle
	// makes continue the event's trace. Required.
	Handle func(ctx context.Context, topic string, task *commonops.Task) error
	// BodyLimit is the largest event body read; a larger one is dropped.
	// Defaults to 4 MiB.
	BodyLimit int64
	// DedupeSize is how many recently handled event ids are remembered.
	// Defaults to 10000.
	DedupeSize int
	// AppToken is the token every event delivery must carry in the
	// dapr-api-token header (the sidecar's APP_API_TOKEN); a delivery
	// without it, or with another, is answered 401 and not handled.
	// GET /dapr/subscribe stays open. Defaults to empty: no check.
	AppToken string
	// Logger receives dropped and retried events. Defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, when set, registers commonops_dapr_events_total. Defaults
	// to none.
	Registerer prometheus.Registerer
}

// Subscriber is the http.Handler Dapr talks to: GET /dapr/subscribe lists the
// subscriptions, POST /dapr/events/{topic} delivers one CloudEvent. Mount it
// at the root of the app port (or route /dapr/ to it).
type Subscriber struct {
	cfg    SubscriberConfig
	mux    *http.ServeMux
	seen   *lru.Cache[string, struct{}]
	events *prometheus.CounterVec

	mu       sync.Mutex
	inflight map[string]chan struct{}
}

// NewSubscriber returns a Subscriber for cfg.
func NewSubscriber(cfg SubscriberConfig) *Subscriber {
	if cfg.PubSubName == "" {
		cfg.PubSubName = PubSubNameDefault
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = BodyLimitDefault
	}
	if cfg.DedupeSize <= 0 {
		cfg.DedupeSize = DedupeSizeDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	seen, err := lru.New[string, struct{}](cfg.DedupeSize)
	if err != nil {
		panic(fmt.Sprintf("dapr: dedupe cache: %v", err)) // only for a size <= 0, excluded above
	}
	s := &Subscriber{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		seen:     seen,
		inflight: map[string]chan struct{}{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commonops_dapr_events_total",
			Help: "Events received from Dapr, by topic and answer (SUCCESS, RETRY, DROP, DUPLICATE, UNAUTHORIZED).",
		}, []string{"topic", "status"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.events); err != nil {
			cfg.Logger.Warn("dapr subscriber: register metric", "err", err)
		}
	}
	s.mux.HandleFunc("GET /dapr/subscribe", s.handleSubscribe)
	s.mux.HandleFunc("POST /dapr/events/{topic}", s.handleEvent)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Subscriber) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Subscription is one entry of the programmatic subscription list.
type Subscription struct {
	PubSubName      string `json:"pubsubname"`
	Topic           string `json:"topic"`
	Route           string `json:"route"`
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
}

// Subscriptions returns what GET /dapr/subscribe answers.
func (s *Subscriber) Subscriptions() []Subscription {
	subs := make([]Subscription, 0, len(commonops.WorkerTopics))
	for _, t := range commonops.WorkerTopics {
		name := s.cfg.PubSubName
		if s.cfg.BroadcastPubSubName != "" && slices.Contains(BroadcastTopics, t) {
			name = s.cfg.BroadcastPubSubName
		}
		subs = append(subs, Subscription{
			PubSubName:      name,
			Topic:           t,
			Route:           "/dapr/events/" + t,
			DeadLetterTopic: DeadLetterTopic,
		})
	}
	return subs
}

func (s *Subscriber) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Subscriptions())
}

// authorized reports whether r carries the configured app token, if any.
func (s *Subscriber) authorized(r *http.Request) bool {
	if s.cfg.AppToken == "" {
		return true
	}
	got := r.Header.Get(AppTokenHeader)
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AppToken)) == 1
}

func (s *Subscriber) handleEvent(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if !s.authorized(r) {
		s.cfg.Logger.Warn("dapr event refused: missing or wrong "+AppTokenHeader, "topic", topic, "remote", r.RemoteAddr)
		s.events.WithLabelValues(topicLabel(topic), "UNAUTHORIZED").Inc()
		http.Error(w, "missing or wrong "+AppTokenHeader, http.StatusUnauthorized)
		return
	}
	status, id, err := s.deliver(r, topic)
	log := s.cfg.Logger
	switch status {
	case StatusDrop:
		log.Warn("dapr event dropped", "topic", topic, "id", id, "err", err)
	case StatusRetry:
		log.Warn("dapr event to be retried", "topic", topic, "id", id, "err", err)
	}
	label := status
	if status == StatusSuccess && err == errDuplicate {
		label = "DUPLICATE"
	}
	s.events.WithLabelValues(topicLabel(topic), label).Inc()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// topicLabel keeps the metric's cardinality bounded against made-up topics.
func topicLabel(topic string) string {
	if slices.Contains(commonops.WorkerTopics, topic) {
		return topic
	}
	return "other"
}

var errDuplicate = errors.New("duplicate event id")

// deliver decodes and handles one event and returns Dapr's answer, the event
// id and, for anything but a first SUCCESS, why.
func (s *Subscriber) deliver(r *http.Request, topic string) (status, id string, err error) {
	if !slices.Contains(commonops.WorkerTopics, topic) {
		return StatusDrop, "", fmt.Errorf("unknown topic %q", topic)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.BodyLimit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return StatusDrop, "", fmt.Errorf("event over %d bytes", s.cfg.BodyLimit)
		}
		return StatusRetry, "", fmt.Errorf("read event: %w", err)
	}
	task, ce, err := decodeEvent(body)
	id = ce.ID
	if err != nil {
		return StatusDrop, id, err
	}

	// Dedupe: a handled event answers SUCCESS at once; a copy arriving while
	// the first is being handled waits for its outcome. The key is the id
	// (the outbox row id) with the subject (the task id): outbox ids restart
	// with a fresh database while a pub/sub stream may outlive it, so an id
	// alone could name an event of another database that was seen before.
	key := id + "/" + ce.Subject
	for {
		// Checked under the lock: the first copy records its id as seen
		// before it leaves inflight, so a copy that finds neither is the
		// first.
		s.mu.Lock()
		if s.seen.Contains(key) {
			s.mu.Unlock()
			return StatusSuccess, id, errDuplicate
		}
		wait, busy := s.inflight[key]
		if !busy {
			s.inflight[key] = make(chan struct{})
		}
		s.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-wait:
		case <-r.Context().Done():
			return StatusRetry, id, r.Context().Err()
		}
	}
	defer func() {
		s.mu.Lock()
		close(s.inflight[key])
		delete(s.inflight, key)
		s.mu.Unlock()
	}()

	ctx := r.Context()
	if commonops.ValidTraceParent(ce.TraceParent) {
		ctx = commonops.WithTraceParent(ctx, ce.TraceParent)
	}
	if err := s.cfg.Handle(ctx, topic, task); err != nil {
		switch commonops.ErrorCode(err) {
		case commonops.ENOTFOUND, commonops.EINVALID, commonops.EMALFORMED, commonops.ECONFLICT:
			return StatusDrop, id, fmt.Errorf("handle task %s: %w", task.ID, err)
		}
		return StatusRetry, id, fmt.Errorf("handle task %s: %w", task.ID, err)
	}
	s.seen.Add(key, struct{}{})
	return StatusSuccess, id, nil
}

// decodeEvent parses a CloudEvent whose data is a task, and returns both.
// Any error means the event is poison.
func decodeEvent(body []byte) (*commonops.Task, CloudEvent, error) {
	var ce CloudEvent
	if err := json.Unmarshal(body, &ce); err != nil {
		return nil, CloudEvent{}, fmt.Errorf("malformed cloudevent: %w", err)
	}
	if ce.ID == "" {
		return nil, ce, errors.New("malformed cloudevent: no id")
	}
	data := ce.Data
	// A publisher that sent the task as a JSON string gets it unwrapped once.
	var str string
	if len(data) > 0 && data[0] == '"' && json.Unmarshal(data, &str) == nil {
		data = json.RawMessage(str)
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, ce, errors.New("malformed cloudevent: data is not a task object")
	}
	var task commonops.Task
	if err := json.Unmarshal(data, &task); err != nil {
		return nil, ce, fmt.Errorf("malformed task in cloudevent: %w", err)
	}
	if task.ID == "" {
		return nil, ce, errors.New("malformed task in cloudevent: no id")
	}
	return &task, ce, nil
}

// compile-time check that the Subscriber stays an http.Handler.
var _ http.Handler = (*Subscriber)(nil)
