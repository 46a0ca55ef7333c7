package commonops

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// wantEventData is the reference: encoding/json of EventData, {} for none.
func wantEventData(t *testing.T, data map[string]any, actor string) []byte {
	t.Helper()
	d := EventData(WithActor(context.Background(), actor), data)
	if len(d) == 0 {
		return []byte("{}")
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return b
}

// randomEventValue is a value of a kind transitions record, or now and
// then one AppendEventData leaves to encoding/json.
func randomEventValue(r *rand.Rand) any {
	switch r.IntN(10) {
	case 0:
		return nil
	case 1:
		return jsonStrings[r.IntN(len(jsonStrings))]
	case 2:
		return Status(jsonStrings[r.IntN(len(jsonStrings))])
	case 3:
		return UploadStatus(jsonStrings[r.IntN(len(jsonStrings))])
	case 4:
		return r.IntN(2) == 0
	case 5:
		return int(r.Int64N(1<<40) - 1<<39)
	case 6:
		return r.Int64() - math.MaxInt64/2
	case 7:
		return jsonFloats[r.IntN(len(jsonFloats))]
	case 8:
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC() // a schedule's tick
	default:
		return []string{"a", "<b>"}
	}
}

// TestEventDataMatchesEncodingJSON encodes random event data, with and
// without an actor (which may also be a key of the data), both ways and
// wants the same bytes.
func TestEventDataMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	keys := append([]string{"from", "to", "attempt", "actor", "workerId", "progress"}, jsonStrings...)
	for i := range 5000 {
		var data map[string]any
		if n := r.IntN(6); n > 0 || r.IntN(2) == 0 {
			data = map[string]any{}
			for range n {
				data[keys[r.IntN(len(keys))]] = randomEventValue(r)
			}
		}
		actor := ""
		if r.IntN(2) == 0 {
			actor = jsonStrings[r.IntN(len(jsonStrings))]
		}
		want := wantEventData(t, data, actor)
		got, err := AppendEventData([]byte("prefix"), data, actor)
		if err != nil {
			t.Fatalf("data %d %v actor %q: %v", i, data, actor, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("data %d %v actor %q:\n got %s\nwant prefix%s", i, data, actor, got, want)
		}
	}
}

// TestEventDataOfTransitions: the data of a create, a claim and a failure
// (strings, statuses, numbers, a boolean) is written as encoding/json
// writes it, with and without an actor.
func TestEventDataOfTransitions(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	task, created, err := NewTask("t1", "acme", "u1", CreateInput{TaskType: "import", EntityType: "product"}, Limits{}, now)
	if err != nil {
		t.Fatal(err)
	}
	changes := []Change{created}
	started, err := task.Claim("w<1>", time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	changes = append(changes, started, task.FailAttempt("boom & <bust>", true, 0, now))
	for _, ch := range changes {
		for _, actor := range []string{"", "apikey:k1"} {
			want := wantEventData(t, ch.Data, actor)
			got, err := AppendEventData(nil, ch.Data, actor)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s event, actor %q: got %s, %v; want %s", ch.Event, actor, got, err, want)
			}
		}
	}
}

// TestEventDataErrors: what encoding/json refuses, AppendEventData refuses.
func TestEventDataErrors(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(-1), func() {}} {
		data := map[string]any{"v": v}
		if _, err := json.Marshal(data); err == nil {
			t.Fatalf("encoding/json accepted %v", v)
		}
		if got, err := AppendEventData(nil, data, ""); err == nil {
			t.Fatalf("AppendEventData(%v): got %s, want an error", v, got)
		}
	}
}

// BenchmarkEventData: a create's event data with an actor, as the stores
// wrote it before (encoding/json of EventData) and as they write it now.
func BenchmarkEventData(b *testing.B) {
	data := map[string]any{"from": Status(""), "to": StatusPending, "uploadStatus": UploadNone}
	ctx := WithActor(context.Background(), "gateway:user-1")
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(EventData(ctx, data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AppendEventData(make([]byte, 0, 128), data, Actor(ctx)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
