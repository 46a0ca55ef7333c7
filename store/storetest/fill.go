package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
)

// enumValues are the valid values of each named string type among the
// fields of commonops.Task. filledTask refuses a field of a named string
// type that is not listed here, so a new enum cannot slip past the round
// trip with a value no driver would ever see.
var enumValues = map[reflect.Type][]any{
	reflect.TypeFor[commonops.Status]():       {commonops.StatusProcessing, commonops.StatusPending, commonops.StatusCompleted, commonops.StatusFailed, commonops.StatusCancelled, commonops.StatusScheduled},
	reflect.TypeFor[commonops.UploadStatus](): {commonops.UploadUploaded, commonops.UploadAwaiting, commonops.UploadExpired, commonops.UploadNone},
}

var (
	taskType    = reflect.TypeFor[commonops.Task]()
	timeType    = reflect.TypeFor[time.Time]()
	rawJSONType = reflect.TypeFor[json.RawMessage]()
	stringType  = reflect.TypeFor[string]()
)

// filledTask returns a task with id and tenant whose every other field is
// set by reflection, so a field added to commonops.Task is filled without
// editing this suite: each value is derived from seed and the field's
// position, so no two fields (and no two seeds) share a value. Pointers are
// non-nil, times are UTC at microsecond precision, JSON is a valid object
// and enums take one of their enumValues. Every value is non-zero except
// booleans, which are true for odd seeds and false for even ones (so a
// later seed can prove a boolean column is written by an update too). The
// field values need not make a task the transitions could reach: the store
// keeps whatever it is given.
func filledTask(t *testing.T, id, tenant string, seed int) *commonops.Task {
	t.Helper()
	var tk commonops.Task
	v := reflect.ValueOf(&tk).Elem()
	for i := range taskType.NumField() {
		f := taskType.Field(i)
		if !stored(f) {
			continue
		}
		fill(t, f.Name, v.Field(i), seed*100+i+1, seed)
	}
	tk.ID, tk.TenantID = id, tenant
	return &tk
}

// stored reports whether the stores keep field f of commonops.Task: a
// field computed on read is tagged store:"-".
func stored(f reflect.StructField) bool { return f.Tag.Get("store") != "-" }

// fill sets v, the field named name, to a value derived from n.
func fill(t *testing.T, name string, v reflect.Value, n, seed int) {
	t.Helper()
	typ := v.Type()
	switch {
	case typ == timeType:
		v.Set(reflect.ValueOf(base.Add(time.Duration(n) * (time.Second + time.Microsecond))))
		return
	case typ == rawJSONType:
		v.Set(reflect.ValueOf(json.RawMessage(fmt.Sprintf(`{"field":%q,"n":%d}`, name, n))))
		return
	case typ.Kind() == reflect.String && typ != stringType:
		values, ok := enumValues[typ]
		if !ok {
			t.Fatalf("field %s has type %s: add its valid values to storetest.enumValues", name, typ)
		}
		v.Set(reflect.ValueOf(values[seed%len(values)]).Convert(typ))
		return
	}
	switch typ.Kind() {
	case reflect.Pointer:
		p := reflect.New(typ.Elem())
		fill(t, name, p.Elem(), n, seed)
		v.Set(p)
	case reflect.String:
		v.SetString(fmt.Sprintf("%s-%d", strings.ToLower(name), n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n%400) / 4) // a quarter step is exact in binary; within 0..100
	case reflect.Bool:
		v.SetBool(seed%2 == 1)
	default:
		t.Fatalf("field %s has type %s, which storetest.fill cannot fill yet: teach it", name, typ)
	}
}

// equalFields fails unless got and want hold the same value in every field
// of commonops.Task, walked by reflection so that a new field is compared
// too. Times must be equal instants read back in UTC; JSON must hold the
// same value. Every differing field is reported before the test stops.
func equalFields(t *testing.T, what string, got, want *commonops.Task) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got no task, want %s", what, want.ID)
	}
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	failed := false
	for i := range taskType.NumField() {
		if !stored(taskType.Field(i)) {
			continue
		}
		name := taskType.Field(i).Name
		if msg := diffValue(t, g.Field(i), w.Field(i)); msg != "" {
			t.Errorf("%s: field %s: %s", what, name, msg)
			failed = true
		}
	}
	if failed {
		t.FailNow()
	}
}

// diffValue describes how got differs from want, or returns "".
func diffValue(t *testing.T, got, want reflect.Value) string {
	t.Helper()
	typ := want.Type()
	switch {
	case typ == timeType:
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		switch {
		case !g.Equal(w):
			return fmt.Sprintf("got %s, want %s", g.Format(time.RFC3339Nano), w.Format(time.RFC3339Nano))
		case !g.IsZero() && g.Location() != time.UTC:
			return fmt.Sprintf("got %s in %s, want it in UTC", g.Format(time.RFC3339Nano), g.Location())
		}
		return ""
	case typ == rawJSONType:
		g, w := got.Bytes(), want.Bytes()
		switch {
		case (g == nil) != (w == nil):
			return fmt.Sprintf("got %s, want %s", jsonText(g), jsonText(w))
		case g != nil && !jsonEqual(t, g, w):
			return fmt.Sprintf("got %s, want %s", g, w)
		}
		return ""
	case typ.Kind() == reflect.Pointer:
		switch {
		case got.IsNil() && want.IsNil():
			return ""
		case got.IsNil():
			return fmt.Sprintf("got nil, want %v", want.Elem())
		case want.IsNil():
			return fmt.Sprintf("got %v, want nil", got.Elem())
		}
		return diffValue(t, got.Elem(), want.Elem())
	}
	if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	return ""
}

func jsonText(b []byte) string {
	if b == nil {
		return "nil"
	}
	return string(b)
}
