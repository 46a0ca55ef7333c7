package commonops_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/commonops/commonops"
)

// These tests walk commonops.Progress by reflection, so a field added to it
// and forgotten in Merge or Clone fails them; a field of a kind they do not
// know fails them too, until they learn it.

// setValue sets v, a field of Progress or what one points to, to a value
// derived from seed: different seeds give different values, and a bool is
// true for even seeds only.
func setValue(t *testing.T, name string, v reflect.Value, seed int) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		setValue(t, name, v.Elem(), seed)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			t.Fatalf("field %s: slice of %s not handled by this test", name, v.Type().Elem())
		}
		v.SetBytes([]byte(fmt.Sprintf(`{"seed":%d}`, seed)))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(seed))
	case reflect.Float64:
		v.SetFloat(float64(seed) + 0.5)
	case reflect.String:
		v.SetString(fmt.Sprintf("value-%d", seed))
	case reflect.Bool:
		v.SetBool(seed%2 == 0)
	default:
		t.Fatalf("field %s: kind %s not handled by this test: teach Progress.Merge, Progress.Clone and this test about it", name, v.Kind())
	}
}

// filled returns a Progress with every field set from seed.
func filled(t *testing.T, seed int) commonops.Progress {
	t.Helper()
	var p commonops.Progress
	v := reflect.ValueOf(&p).Elem()
	for i := range v.NumField() {
		setValue(t, v.Type().Field(i).Name, v.Field(i), seed)
	}
	return p
}

// show renders p with its values rather than its pointers.
func show(p commonops.Progress) string {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Sprintf("%+v", p)
	}
	return string(b)
}

func TestProgressMergeEveryField(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[commonops.Progress]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			base := filled(t, 1)
			var newer commonops.Progress
			setValue(t, name, reflect.ValueOf(&newer).Elem().Field(i), 2)
			want := base
			reflect.ValueOf(&want).Elem().Field(i).Set(reflect.ValueOf(newer).Field(i))

			if got := base.Merge(newer); !reflect.DeepEqual(got, want) {
				t.Fatalf("Merge of a report setting only %s: got %s, want %s", name, show(got), show(want))
			}
		})
	}
	t.Run("nothing set", func(t *testing.T) {
		t.Parallel()
		base := filled(t, 1)
		if got := base.Merge(commonops.Progress{}); !reflect.DeepEqual(got, base) {
			t.Fatalf("Merge of an empty report: got %s, want %s unchanged", show(got), show(base))
		}
	})
}

func TestProgressCloneEveryField(t *testing.T) {
	t.Parallel()
	p := filled(t, 2)
	c := p.Clone()
	if !reflect.DeepEqual(c, p) {
		t.Fatalf("Clone: got %s, want %s", show(c), show(p))
	}
	// Change everything p points to: the clone must not see it.
	v := reflect.ValueOf(&p).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.Pointer:
			setValue(t, name, f.Elem(), 3)
		case reflect.Slice:
			f.Index(0).SetUint(f.Index(0).Uint() + 1)
		}
	}
	cv := reflect.ValueOf(c)
	want := reflect.ValueOf(filled(t, 2))
	for i := range cv.NumField() {
		if !reflect.DeepEqual(cv.Field(i).Interface(), want.Field(i).Interface()) {
			t.Errorf("Clone: field %s changed with the original's (got %s, want %s): it shares memory", v.Type().Field(i).Name, show(c), show(want.Interface().(commonops.Progress)))
		}
	}
	if got := (commonops.Progress{}).Clone(); !reflect.DeepEqual(got, commonops.Progress{}) {
		t.Errorf("Clone of an empty report: got %s, want it empty", show(got))
	}
}
