package commonops

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// plainTask has Task's fields and tags but not its methods: encoding/json
// encodes it by reflection, the reference for AppendJSON.
type plainTask Task

var (
	jsonStrings = []string{
		"", "a", "acme", "01J9Z3K4Q8", `quote " and \ backslash`, "<script>&amp;</script>",
		"line\nbreak\ttab\rcr", "\b\f\x00\x01\x1f\x7f", "é ü 日本 🙂", "\u2028\u2029",
		"invalid \xff\xfe utf-8", "\xed\xa0\x80 surrogate half", "trailing \xe2\x80",
	}
	jsonRaws = []json.RawMessage{
		nil, json.RawMessage(`{}`), json.RawMessage(`{"a": 1, "b" : [1, 2, 3]}`),
		json.RawMessage("\n {\"html\": \"<b>&</b>\", \"sep\": \"\u2028\"}\t"),
		json.RawMessage(`"string"`), json.RawMessage(`null`), json.RawMessage(`[ ]`),
		json.RawMessage(`{"n": 1e-7, "esc": "\u003c\n"}`),
	}
	jsonFloats = []float64{0, 1, 0.5, 1e-7, 1e-6, 123456.789, 1e21, 1e20, -0.25, math.SmallestNonzeroFloat64, math.MaxFloat64, 1.0 / 3}
	zones      = []*time.Location{time.UTC, time.FixedZone("east", 5*3600+30*60), time.FixedZone("west", -8*3600)}
)

// randomValue sets v, of any type a Task field has, to a random value;
// pointers are nil one time in three.
func randomValue(t *testing.T, r *rand.Rand, v reflect.Value) {
	t.Helper()
	if v.Kind() == reflect.Pointer {
		if r.IntN(3) == 0 {
			v.SetZero()
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		randomValue(t, r, v.Elem())
		return
	}
	switch v.Interface().(type) {
	case time.Time:
		at := time.Unix(r.Int64N(4e9)-1e9, r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
		v.Set(reflect.ValueOf(at))
		return
	case json.RawMessage:
		v.Set(reflect.ValueOf(jsonRaws[r.IntN(len(jsonRaws))]))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(jsonStrings[r.IntN(len(jsonStrings))])
	case reflect.Int, reflect.Int64:
		v.SetInt(r.Int64N(1<<40) - 1<<39)
	case reflect.Float64:
		v.SetFloat(jsonFloats[r.IntN(len(jsonFloats))])
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Struct:
		for i := range v.NumField() {
			randomValue(t, r, v.Field(i))
		}
	default:
		t.Fatalf("no random value for a field of type %s: teach randomValue (and AppendJSON) about it", v.Type())
	}
}

// TestTaskJSONMatchesEncodingJSON encodes tasks with every field random
// (so a field added to Task and not to AppendJSON fails it) both ways and
// wants the same bytes.
func TestTaskJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		var task Task
		randomValue(t, r, reflect.ValueOf(&task).Elem())
		want, err := json.Marshal((*plainTask)(&task))
		if err != nil {
			t.Fatalf("task %d: encoding/json: %v", i, err)
		}
		got, err := task.AppendJSON(nil)
		if err != nil {
			t.Fatalf("task %d: AppendJSON: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("task %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestNilTaskJSON: a nil task is null, as encoding/json writes it.
func TestNilTaskJSON(t *testing.T) {
	var task *Task
	want, _ := json.Marshal((*plainTask)(task))
	if got, err := task.AppendJSON(nil); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("nil task: %s, %v; want %s", got, err, want)
	}
}

// TestTaskJSONErrors: what encoding/json refuses, AppendJSON refuses.
func TestTaskJSONErrors(t *testing.T) {
	year := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]Task{
		"NaN progress":      {Progress: math.NaN()},
		"infinite progress": {Progress: math.Inf(1)},
		"params not JSON":   {Params: json.RawMessage(`{"a":`)},
		"empty checkpoint":  {Checkpoint: json.RawMessage{}},
		"year 10000":        {CreatedAt: year},
		"started year -1":   {StartedAt: new(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))},
	}
	for name, task := range cases {
		if _, err := json.Marshal((*plainTask)(&task)); err == nil {
			t.Fatalf("%s: encoding/json accepts it; the case is wrong", name)
		}
		if b, err := task.AppendJSON(nil); err == nil {
			t.Errorf("%s: AppendJSON = %s, want an error", name, b)
		}
	}
}

// FuzzTaskJSON compares the two encodings of a task whose strings, raw
// messages and progress come from the fuzzer.
func FuzzTaskJSON(f *testing.F) {
	for i, s := range jsonStrings {
		f.Add(s, []byte(jsonRaws[i%len(jsonRaws)]), jsonFloats[i%len(jsonFloats)])
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte, progress float64) {
		task := Task{ID: s, Message: &s, Params: raw, Progress: progress, Checkpoint: json.RawMessage(s)}
		want, werr := json.Marshal((*plainTask)(&task))
		got, gerr := task.AppendJSON(nil)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json error %v, AppendJSON error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// taskHeader has the fields of Task.AppendHeaderJSON, in its order, with
// Task's tags: encoding/json's reference for it.
type taskHeader struct {
	ID         string    `json:"id"`
	TenantID   string    `json:"tenantId"`
	TaskType   string    `json:"taskType"`
	EntityType string    `json:"entityType"`
	Status     Status    `json:"status"`
	Attempt    int       `json:"attempt"`
	Version    int64     `json:"version"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// TestTaskHeaderJSON: AppendHeaderJSON writes what encoding/json writes
// of the header's fields, and decodes into a Task with those fields and
// no other.
func TestTaskHeaderJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		var task Task
		randomValue(t, r, reflect.ValueOf(&task).Elem())
		h := taskHeader{task.ID, task.TenantID, task.TaskType, task.EntityType, task.Status, task.Attempt, task.Version, task.UpdatedAt}
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("task %d: encoding/json: %v", i, err)
		}
		got, err := task.AppendHeaderJSON(nil)
		if err != nil {
			t.Fatalf("task %d: AppendHeaderJSON: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("task %d:\n got %s\nwant %s", i, got, want)
		}
		// Decoded, it sets the header's fields and no other (its strings
		// are encoding/json's, compared above).
		var back Task
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("task %d: decode: %v", i, err)
		}
		if back.Attempt != task.Attempt || back.Version != task.Version || !back.UpdatedAt.Equal(task.UpdatedAt) {
			t.Fatalf("task %d: decoded attempt %d version %d updatedAt %s, want %d %d %s", i, back.Attempt, back.Version, back.UpdatedAt, task.Attempt, task.Version, task.UpdatedAt)
		}
		back.ID, back.TenantID, back.TaskType, back.EntityType, back.Status, back.Attempt, back.Version, back.UpdatedAt = "", "", "", "", "", 0, 0, time.Time{}
		if !reflect.DeepEqual(back, Task{}) {
			t.Fatalf("task %d: the decoded header sets other fields: %+v", i, back)
		}
	}
	var none *Task
	if got, err := none.AppendHeaderJSON(nil); err != nil || string(got) != "null" {
		t.Fatalf("nil task: %s, %v; want null", got, err)
	}
}
