package dapr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/dapr"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
)

// handler records the tasks it is given and answers with fail(task) when set.
type handler struct {
	mu    sync.Mutex
	calls map[string]int // task id -> calls
	order []string
	fail  func(topic string, task *commonops.Task) error
}

func newHandler() *handler { return &handler{calls: map[string]int{}} }

func (h *handler) Handle(ctx context.Context, topic string, task *commonops.Task) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[task.ID]++
	h.order = append(h.order, topic+" "+task.ID)
	if h.fail != nil {
		return h.fail(topic, task)
	}
	return nil
}

func (h *handler) count(taskID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[taskID]
}

func (h *handler) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		n += c
	}
	return n
}

func cloudEvent(t testing.TB, id, topic string, data any) []byte {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(dapr.CloudEvent{SpecVersion: "1.0", ID: id, Type: topic, Source: dapr.Source, DataContentType: "application/json", Data: raw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t testing.TB, h http.Handler, path string, body []byte) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	h.ServeHTTP(rec, req)
	var answer struct{ Status string }
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("answer %q: %v", rec.Body.String(), err)
	}
	return rec.Code, answer.Status
}

func TestSubscribeListsSubscriptions(t *testing.T) {
	t.Parallel()
	s := dapr.NewSubscriber(dapr.SubscriberConfig{PubSubName: "tasks", Handle: newHandler().Handle})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dapr/subscribe", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", rec.Code)
	}
	var subs []map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &subs); err != nil {
		t.Fatal(err)
	}
	want := []string{commonops.TopicCreated, commonops.TopicRetried, commonops.TopicCancelled}
	if len(subs) != len(want) {
		t.Fatalf("subscriptions: got %d, want %d: %s", len(subs), len(want), rec.Body)
	}
	for i, topic := range want {
		got := subs[i]
		if got["topic"] != topic || got["pubsubname"] != "tasks" || got["route"] != "/dapr/events/"+topic || got["deadLetterTopic"] != dapr.DeadLetterTopic {
			t.Errorf("subscription %d: got %v, want topic %s on pubsub tasks, route /dapr/events/%s, dead letter %s", i, got, topic, topic, dapr.DeadLetterTopic)
		}
	}
}

func TestSubscriberAnswers(t *testing.T) {
	t.Parallel()
	task := &commonops.Task{ID: "7b0f6c1e-3f55-4d8e-9a57-0d8f3b1c2a10", TaskType: "import", EntityType: "product"}
	cases := []struct {
		name   string
		path   string
		body   []byte
		err    error
		want   string
		called int
	}{
		{"handled", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, task), nil, dapr.StatusSuccess, 1},
		{"retried topic", "/dapr/events/" + commonops.TopicRetried, cloudEvent(t, "1", commonops.TopicRetried, task), nil, dapr.StatusSuccess, 1},
		{"unknown task", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, task), commonops.Errorf(commonops.ENOTFOUND, "no such task"), dapr.StatusDrop, 1},
		{"invalid", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, task), commonops.Errorf(commonops.EINVALID, "bad"), dapr.StatusDrop, 1},
		{"claim lost", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, task), commonops.Errorf(commonops.ECONFLICT, "already claimed"), dapr.StatusDrop, 1},
		{"database down", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, task), fmt.Errorf("claim: %w", commonops.Errorf(commonops.EUNAVAILABLE, "db down")), dapr.StatusRetry, 1},
		{"plain error", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, task), fmt.Errorf("boom"), dapr.StatusRetry, 1},
		{"unknown topic", "/dapr/events/operations.task.exploded", cloudEvent(t, "1", "operations.task.exploded", task), nil, dapr.StatusDrop, 0},
		{"not json", "/dapr/events/" + commonops.TopicCreated, []byte("{nope"), nil, dapr.StatusDrop, 0},
		{"no id", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "", commonops.TopicCreated, task), nil, dapr.StatusDrop, 0},
		{"data not a task", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, []int{1, 2}), nil, dapr.StatusDrop, 0},
		{"task without id", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, map[string]any{"taskType": "x"}), nil, dapr.StatusDrop, 0},
		{"too large", "/dapr/events/" + commonops.TopicCreated, cloudEvent(t, "1", commonops.TopicCreated, map[string]any{"id": task.ID, "message": strings.Repeat("x", 2048)}), nil, dapr.StatusDrop, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHandler()
			h.fail = func(string, *commonops.Task) error { return tc.err }
			s := dapr.NewSubscriber(dapr.SubscriberConfig{Handle: h.Handle, BodyLimit: 1024})
			code, status := post(t, s, tc.path, tc.body)
			if code != http.StatusOK || status != tc.want {
				t.Errorf("answer: got %d %s, want 200 %s", code, status, tc.want)
			}
			if got := h.total(); got != tc.called {
				t.Errorf("Handle calls: got %d, want %d", got, tc.called)
			}
		})
	}
}

func TestSubscriberDedupesSuccessfulIDsOnly(t *testing.T) {
	t.Parallel()
	task := &commonops.Task{ID: "0c5e7a52-8f2c-4a8e-b6a4-3f0e2d9c1b77"}
	h := newHandler()
	fails := 1
	h.fail = func(string, *commonops.Task) error {
		if fails > 0 {
			fails--
			return commonops.Errorf(commonops.EUNAVAILABLE, "db down")
		}
		return nil
	}
	s := dapr.NewSubscriber(dapr.SubscriberConfig{Handle: h.Handle, DedupeSize: 2})
	path := "/dapr/events/" + commonops.TopicCreated
	steps := []struct {
		id    string
		want  string
		calls int
	}{
		{"1", dapr.StatusRetry, 1},   // transient failure: not remembered
		{"1", dapr.StatusSuccess, 2}, // the redelivery is handled
		{"1", dapr.StatusSuccess, 2}, // a duplicate of a handled id is not
		{"2", dapr.StatusSuccess, 3},
		{"3", dapr.StatusSuccess, 4}, // evicts "1" from a cache of 2
		{"3", dapr.StatusSuccess, 4},
		{"1", dapr.StatusSuccess, 5}, // forgotten, so handled again (the claim decides)
	}
	for i, st := range steps {
		_, status := post(t, s, path, cloudEvent(t, st.id, commonops.TopicCreated, task))
		if status != st.want {
			t.Errorf("step %d (id %s): got %s, want %s", i, st.id, status, st.want)
		}
		if got := h.count(task.ID); got != st.calls {
			t.Errorf("step %d (id %s): Handle calls got %d, want %d", i, st.id, got, st.calls)
		}
	}
}

func TestSubscriberConcurrentDuplicatesHandledOnce(t *testing.T) {
	t.Parallel()
	task := &commonops.Task{ID: "5a3e0b8c-1d2f-4e6a-9b7c-8d0e1f2a3b4c"}
	h := newHandler()
	s := dapr.NewSubscriber(dapr.SubscriberConfig{Handle: h.Handle})
	body := cloudEvent(t, "42", commonops.TopicCreated, task)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, status := post(t, s, "/dapr/events/"+commonops.TopicCreated, body); status != dapr.StatusSuccess {
				t.Errorf("answer: got %s, want SUCCESS", status)
			}
		})
	}
	wg.Wait()
	if got := h.count(task.ID); got != 1 {
		t.Errorf("Handle calls for 8 concurrent copies: got %d, want 1", got)
	}
}

func TestSubscriberAppToken(t *testing.T) {
	t.Parallel()
	task := &commonops.Task{ID: "9d1c3b5a-7e2f-4a6b-8c0d-1e2f3a4b5c6d"}
	path := "/dapr/events/" + commonops.TopicCancelled
	cases := []struct {
		name   string
		config string // the subscriber's AppToken
		header *string
		code   int
		called int
	}{
		{"no token configured, none sent", "", nil, http.StatusOK, 1},
		{"no token configured, one sent", "", ptr("anything"), http.StatusOK, 1},
		{"right token", "s3cret-token", ptr("s3cret-token"), http.StatusOK, 1},
		{"no token sent", "s3cret-token", nil, http.StatusUnauthorized, 0},
		{"empty token sent", "s3cret-token", ptr(""), http.StatusUnauthorized, 0},
		{"wrong token", "s3cret-token", ptr("s3cret-tokeN"), http.StatusUnauthorized, 0},
		{"token prefix", "s3cret-token", ptr("s3cret"), http.StatusUnauthorized, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHandler()
			s := dapr.NewSubscriber(dapr.SubscriberConfig{Handle: h.Handle, AppToken: tc.config})
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(cloudEvent(t, "1", commonops.TopicCancelled, task)))
			if tc.header != nil {
				req.Header.Set(dapr.AppTokenHeader, *tc.header)
			}
			s.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Errorf("POST %s: got %d, want %d", path, rec.Code, tc.code)
			}
			if got := h.total(); got != tc.called {
				t.Errorf("Handle calls: got %d, want %d", got, tc.called)
			}
			rec = httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dapr/subscribe", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("GET /dapr/subscribe without token: got %d, want 200", rec.Code)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestSubscriberContinuesTrace delivers events with and without a valid
// traceparent to a Handle that changes the task in a real store: the outbox
// row of that change carries the event's traceparent, or none.
func TestSubscriberContinuesTrace(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	st := testdb.SQLite(t)
	ctx := context.Background()
	s := dapr.NewSubscriber(dapr.SubscriberConfig{Handle: func(ctx context.Context, _ string, task *commonops.Task) error {
		_, err := st.UpdateTask(ctx, "", task.ID, func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(time.Now()) })
		return err
	}})
	cases := []struct{ name, traceparent, want string }{
		{"valid", tp, tp},
		{"absent", "", ""},
		{"invalid", strings.ToUpper(tp), ""},
	}
	want := map[string]string{} // task id -> traceparent
	for i, c := range cases {
		task, ch, err := commonops.NewTask(uuid.NewString(), commonops.DefaultTenant, "u", commonops.CreateInput{TaskType: "import", EntityType: "product"}, commonops.Limits{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		body, err := json.Marshal(dapr.CloudEvent{SpecVersion: "1.0", ID: strconv.Itoa(i + 1), Type: commonops.TopicCreated, Source: dapr.Source,
			DataContentType: "application/json", Data: mustJSON(t, task), TraceParent: c.traceparent})
		if err != nil {
			t.Fatal(err)
		}
		if code, status := post(t, s, "/dapr/events/"+commonops.TopicCreated, body); code != http.StatusOK || status != dapr.StatusSuccess {
			t.Fatalf("%s: answer got %d %s, want 200 %s", c.name, code, status, dapr.StatusSuccess)
		}
		want[task.ID] = c.want
	}
	got := map[string]string{}
	if _, err := st.DeliverOutbox(ctx, 100, func(_ context.Context, msgs []outbox.Message) (int, error) {
		for _, m := range msgs {
			if m.Topic == commonops.TopicCancelled {
				got[m.TaskID] = m.TraceParent
			}
		}
		return len(msgs), nil
	}); err != nil {
		t.Fatalf("DeliverOutbox: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("cancelled rows' traceparent by task: got %v, want %v", got, want)
	}
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Outbox ids restart with a fresh database while the pub/sub stream may
// outlive it: an event with an id seen before but another subject (task) is
// a new event, not a duplicate.
func TestSubscriberDedupesOnIDAndSubject(t *testing.T) {
	t.Parallel()
	h := newHandler()
	s := dapr.NewSubscriber(dapr.SubscriberConfig{Handle: h.Handle})
	path := "/dapr/events/" + commonops.TopicCreated
	event := func(id string, task *commonops.Task) []byte {
		raw, _ := json.Marshal(task)
		b, err := json.Marshal(dapr.CloudEvent{SpecVersion: "1.0", ID: id, Type: commonops.TopicCreated, Source: dapr.Source,
			Subject: task.ID, DataContentType: "application/json", Data: raw})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := &commonops.Task{ID: "9b2c7f4e-0a1d-4c3b-8e5f-6a7b8c9d0e1f"}
	fresh := &commonops.Task{ID: "1f0e9d8c-7b6a-4f5e-8d3c-2b1a0f9e8d7c"}
	for _, tc := range []struct {
		task *commonops.Task
		want int
	}{{old, 1}, {old, 1}, {fresh, 1}} {
		if _, status := post(t, s, path, event("7", tc.task)); status != dapr.StatusSuccess {
			t.Fatalf("task %s: got %s, want SUCCESS", tc.task.ID, status)
		}
		if got := h.count(tc.task.ID); got != tc.want {
			t.Fatalf("Handle calls for task %s: got %d, want %d", tc.task.ID, got, tc.want)
		}
	}
}
