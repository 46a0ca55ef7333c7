package commonops_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
)

func TestNewTaskDefaults(t *testing.T) {
	k, ch, err := commonops.NewTask("id1", "acme", "alice", commonops.CreateInput{TaskType: "export", EntityType: "product"}, commonops.Limits{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if k.Status != commonops.StatusPending || k.RequestedBy != "alice" || k.MaxRetries != commonops.MaxRetriesDefault ||
		k.UploadStatus != commonops.UploadNone || string(k.Params) != "{}" || k.TenantID != "acme" || k.Version != 1 {
		t.Fatalf("unexpected defaults: %+v", k)
	}
	if ch.Topic != commonops.TopicCreated || ch.Event != commonops.EventCreated {
		t.Fatalf("a runnable task is announced at create; got %+v", ch)
	}
	// Every field of docs/design.md §2 is present in the JSON, null where unset.
	b, _ := json.Marshal(k)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id", "taskType", "entityType", "status", "priority", "params", "requestedBy", "fileName", "fileSize",
		"uploadStatus", "outputFileName", "progress", "totalItems", "processedItems", "successItems", "failedItems", "message",
		"errorMessage", "attempt", "retryCount", "maxRetries", "cancelRequested", "scheduledAt", "startedAt", "completedAt",
		"createdAt", "updatedAt", "version"} {
		if _, ok := m[f]; !ok {
			t.Errorf("task JSON lacks %q", f)
		}
	}
}

func TestNewTaskWithFileIsNotAnnounced(t *testing.T) {
	_, ch, err := commonops.NewTask("id1", "acme", "alice", commonops.CreateInput{TaskType: "import", EntityType: "product", FileName: ptr("a.csv")}, commonops.Limits{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Topic != "" {
		t.Fatalf("a task awaiting its upload must not publish created yet; got topic %q", ch.Topic)
	}
}

func TestNewTaskInvalid(t *testing.T) {
	long := strings.Repeat("x", 300)
	future := t0.Add(400 * 24 * time.Hour)
	tests := []struct {
		name  string
		in    commonops.CreateInput
		code  string
		field string
	}{
		{"missing taskType", commonops.CreateInput{EntityType: "p"}, commonops.EINVALID, "taskType"},
		{"missing entityType", commonops.CreateInput{TaskType: "p"}, commonops.EINVALID, "entityType"},
		{"long taskType", commonops.CreateInput{TaskType: long, EntityType: "p"}, commonops.EINVALID, "taskType"},
		{"bad characters", commonops.CreateInput{TaskType: "a b", EntityType: "p"}, commonops.EINVALID, "taskType"},
		{"params not an object", commonops.CreateInput{TaskType: "a", EntityType: "p", Params: json.RawMessage(`[1]`)}, commonops.EINVALID, "params"},
		{"params too large", commonops.CreateInput{TaskType: "a", EntityType: "p", Params: json.RawMessage(`{"a":"` + strings.Repeat("x", 70000) + `"}`)}, commonops.ETOOLARGE, ""},
		{"priority out of range", commonops.CreateInput{TaskType: "a", EntityType: "p", Priority: ptr(5000)}, commonops.EINVALID, "priority"},
		{"negative maxRetries", commonops.CreateInput{TaskType: "a", EntityType: "p", MaxRetries: ptr(-1)}, commonops.EINVALID, "maxRetries"},
		{"schedule too far", commonops.CreateInput{TaskType: "a", EntityType: "p", ScheduledAt: &future}, commonops.EINVALID, "scheduledAt"},
		{"fileSize without file", commonops.CreateInput{TaskType: "a", EntityType: "p", FileSize: ptr[int64](3)}, commonops.EINVALID, "fileSize"},
		{"negative fileSize", commonops.CreateInput{TaskType: "a", EntityType: "p", FileName: ptr("a.csv"), FileSize: ptr[int64](-3)}, commonops.EINVALID, "fileSize"},
		{"fileSize over limit", commonops.CreateInput{TaskType: "a", EntityType: "p", FileName: ptr("a.csv"), FileSize: ptr[int64](6 << 30)}, commonops.ETOOLARGE, ""},
		{"file name only dots", commonops.CreateInput{TaskType: "a", EntityType: "p", FileName: ptr("../..")}, commonops.EINVALID, "fileName"},
		{"requestedBy with control chars", commonops.CreateInput{TaskType: "a", EntityType: "p", RequestedBy: ptr("a\x00b")}, commonops.EINVALID, "requestedBy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := commonops.NewTask("id", "acme", "alice", tt.in, commonops.Limits{}, t0)
			wantCode(t, err, tt.code)
			if tt.field == "" {
				return
			}
			var e *commonops.Error
			errors.As(err, &e)
			if len(e.Fields) == 0 || e.Fields[0].Field != tt.field {
				t.Fatalf("fields: got %+v, want %q first", e.Fields, tt.field)
			}
		})
	}
}

func TestSanitizeFileName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"report.csv", "report.csv"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\data.xlsx`, "data.xlsx"},
		{"bad\x00na\nme\".csv", "badname.csv"},
		{"  spaced.csv  ", "spaced.csv"},
		{strings.Repeat("é", 200) + ".csv", strings.Repeat("é", 125) + ".csv"},
	}
	for _, tt := range tests {
		got, err := commonops.SanitizeFileName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("SanitizeFileName(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "..", "/", "dir/", " . "} {
		if got, err := commonops.SanitizeFileName(bad); err == nil {
			t.Errorf("SanitizeFileName(%q): got %q, want an error", bad, got)
		}
	}
}

func FuzzSanitizeFileName(f *testing.F) {
	for _, s := range []string{"a.csv", "../x", "\x00", strings.Repeat("a", 400) + ".csv", "é/ü\\ñ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := commonops.SanitizeFileName(in)
		if err != nil {
			return
		}
		if got == "" || len(got) > commonops.MaxFileNameLen || strings.ContainsAny(got, "/\\\x00\n\r\"") || strings.Trim(got, ".") == "" {
			t.Fatalf("SanitizeFileName(%q) = %q: not a safe file name", in, got)
		}
	})
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"héllo", 2, "h"},
		{"日本語", 4, "日"},
	}
	for _, tt := range tests {
		if got := commonops.Truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("Truncate(%q, %d): got %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
