package worker

import (
	"reflect"
	"testing"
)

// TestUpdateProgressEveryField checks that every field of Update reaches the
// field of the same name in the report sent to the store, so a field added
// to Update cannot be dropped on the way.
func TestUpdateProgressEveryField(t *testing.T) {
	var u Update
	uv := reflect.ValueOf(&u).Elem()
	for i := range uv.NumField() {
		f := uv.Field(i)
		f.Set(reflect.New(f.Type().Elem()))
		switch e := f.Elem(); e.Kind() {
		case reflect.Int64:
			e.SetInt(int64(i + 1))
		case reflect.Float64:
			e.SetFloat(float64(i) + 0.5)
		case reflect.Bool:
			e.SetBool(true)
		case reflect.String:
			e.SetString("text")
		default:
			t.Fatalf("field %s: kind %s not handled by this test", uv.Type().Field(i).Name, e.Kind())
		}
	}
	p := u.progress()
	pv := reflect.ValueOf(p)
	for i := range uv.NumField() {
		name := uv.Type().Field(i).Name
		got := pv.FieldByName(name)
		if !got.IsValid() {
			t.Errorf("Update.%s has no field of that name in commonops.Progress", name)
			continue
		}
		if got.IsNil() || !reflect.DeepEqual(got.Elem().Interface(), uv.Field(i).Elem().Interface()) {
			t.Errorf("Progress.%s: got %v, want %v", name, got, uv.Field(i).Elem())
		}
	}
}
