package operations

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/commonops/commonops"
)

// TestCreatedJSONMatchesEncodingJSON: Created.AppendJSON writes what
// encoding/json writes, with every optional field absent and present (the
// task itself is compared field by field in the commonops package).
func TestCreatedJSONMatchesEncodingJSON(t *testing.T) {
	url, method := "https://files.example.com/in?X-Amz-Signature=a&b=<c>", "PUT"
	at := time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.FixedZone("cet", 3600))
	msg := "quote \" and <html> & \u2028"
	task := &commonops.Task{ID: "0193a5e0-7c1d-7b7e-9c5f-2f0b8e1c4a11", TenantID: "acme", TaskType: "import", Status: commonops.StatusPending,
		Params: json.RawMessage(`{"a": [1, 2]}`), Message: &msg, CreatedAt: at, UpdatedAt: at}
	cases := map[string]*Created{
		"task only":   {Task: task},
		"no task":     {},
		"upload":      {Task: task, UploadURL: &url, UploadMethod: &method, UploadHeaders: map[string]string{"Content-Type": "text/csv", "x-amz-meta-b": "<&>"}, UploadExpiresAt: &at},
		"paused":      {Task: task, QueuePaused: true},
		"empty map":   {Task: task, UploadHeaders: map[string]string{}},
		"all but url": {Task: task, UploadMethod: &method, UploadExpiresAt: &at, QueuePaused: true},
	}
	for name, c := range cases {
		want, err := json.Marshal((*createdFields)(c))
		if err != nil {
			t.Fatalf("%s: encoding/json: %v", name, err)
		}
		got, err := c.AppendJSON([]byte("prefix "))
		if err != nil {
			t.Fatalf("%s: AppendJSON: %v", name, err)
		}
		if !bytes.Equal(got, append([]byte("prefix "), want...)) {
			t.Errorf("%s:\n got %s\nwant prefix %s", name, got, want)
		}
	}
	bad := &Created{Task: &commonops.Task{Params: json.RawMessage(`{`)}}
	if _, err := bad.AppendJSON(nil); err == nil {
		t.Error("a task whose params are not JSON encoded without an error")
	}
}
