package objectstore_test

import (
	"testing"

	"github.com/commonops/commonops/objectstore"
)

func TestParseKey(t *testing.T) {
	const id = "0190f0e4-7c1a-7000-8000-000000000001"
	tests := []struct {
		name string
		key  string
		want objectstore.FileKey
		ok   bool
	}{
		{"Input", objectstore.InputKey(id, "in.csv"), objectstore.FileKey{TaskID: id, Kind: objectstore.KindInput, Name: "in.csv"}, true},
		{"Output", objectstore.OutputKey(id, "out.csv"), objectstore.FileKey{TaskID: id, Kind: objectstore.KindOutput, Name: "out.csv"}, true},
		{"AttemptOutput", objectstore.AttemptOutputKey(id, 12, "out.csv"), objectstore.FileKey{TaskID: id, Kind: objectstore.KindOutput, Attempt: 12, Name: "out.csv"}, true},
		{"Errors", objectstore.ErrorsKey(id), objectstore.FileKey{TaskID: id, Kind: objectstore.KindErrors, Name: "errors.csv"}, true},
		{"NotATask", "other/" + id + "/input/in.csv", objectstore.FileKey{}, false},
		{"Nested", "tasks/" + id + "/input/a/in.csv", objectstore.FileKey{}, false},
		{"UnknownDir", "tasks/" + id + "/logs/in.csv", objectstore.FileKey{}, false},
		{"AttemptZero", "tasks/" + id + "/output-0/out.csv", objectstore.FileKey{}, false},
		{"AttemptPadded", "tasks/" + id + "/output-01/out.csv", objectstore.FileKey{}, false},
		{"AttemptSigned", "tasks/" + id + "/output-+1/out.csv", objectstore.FileKey{}, false},
		{"NoName", "tasks/" + id + "/input/", objectstore.FileKey{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := objectstore.ParseKey(tc.key)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseKey(%q): got %+v, %v; want %+v, %v", tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
}
