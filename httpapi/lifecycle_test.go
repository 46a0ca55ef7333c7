package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/store"
)

// put uploads data to a signed URL as a client would, with plain net/http.
func put(t *testing.T, url, method string, headers map[string]string, data []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("new upload request: %v", err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("upload got status %d, want 2xx: %s", resp.StatusCode, body)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download got status %d, want 200: %s", resp.StatusCode, body)
	}
	return body
}

// TestLifecycle walks a task through its whole life over HTTP: create with
// a file, upload, confirm, claim, progress, logs, output, completion,
// download, events, delete.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		input := []byte("sku,name\n1,apple\n2,pear\n")

		var c operations.Created
		e.do("POST", tasksPath, map[string]any{
			"taskType": "import", "entityType": "product", "params": map[string]any{"mode": "upsert"},
			"fileName": "../products.csv", "fileSize": len(input), "contentType": "text/csv",
		}, "X-User-Id", "alice").want(t, http.StatusCreated).decode(t, &c)
		task := c.Task
		if task.Status != commonops.StatusPending || task.UploadStatus != commonops.UploadAwaiting {
			t.Fatalf("got status %s upload %s, want pending awaiting", task.Status, task.UploadStatus)
		}
		if task.RequestedBy != "alice" || *task.FileName != "products.csv" {
			t.Fatalf("got requestedBy %q fileName %q, want alice products.csv", task.RequestedBy, *task.FileName)
		}
		if c.UploadURL == nil || c.UploadMethod == nil {
			t.Fatalf("got no upload URL in %+v", c)
		}
		// Not claimable before its upload.
		p := e.do("POST", taskPath(task.ID, "/claim"), map[string]any{"workerId": "w1"}).want(t, http.StatusConflict).problem(t)
		if p.CurrentStatus == nil || *p.CurrentStatus != commonops.StatusPending {
			t.Fatalf("got currentStatus %v, want pending", p.CurrentStatus)
		}
		put(t, *c.UploadURL, *c.UploadMethod, c.UploadHeaders, input)
		got := e.do("POST", taskPath(task.ID, "/upload-complete"), nil).want(t, http.StatusOK).task(t)
		if got.UploadStatus != commonops.UploadUploaded {
			t.Fatalf("got uploadStatus %s, want uploaded", got.UploadStatus)
		}

		claimed := e.do("POST", taskPath(task.ID, "/claim"), map[string]any{"workerId": "w1", "leaseSeconds": 60}).want(t, http.StatusOK).task(t)
		if claimed.Status != commonops.StatusProcessing || claimed.Attempt != 1 {
			t.Fatalf("got %s attempt %d, want processing attempt 1", claimed.Status, claimed.Attempt)
		}
		e.do("POST", taskPath(task.ID, "/claim"), map[string]any{"workerId": "w2"}).want(t, http.StatusConflict)

		got = e.do("PATCH", taskPath(task.ID, "/progress"), map[string]any{"attempt": 1, "totalItems": 2, "processedItems": 1, "message": "halfway"}).want(t, http.StatusOK).task(t)
		if got.Progress != 50 || got.ProcessedItems != 1 || got.CancelRequested {
			t.Fatalf("got progress %v processed %d cancelRequested %v, want 50 1 false", got.Progress, got.ProcessedItems, got.CancelRequested)
		}
		e.do("POST", taskPath(task.ID, "/logs"), map[string]any{"attempt": 1, "logs": []map[string]any{
			{"level": "info", "message": "row 1 imported"},
			{"level": "warn", "message": "row 2 has no price", "details": map[string]any{"row": 2}},
		}}).want(t, http.StatusCreated)
		// A zombie of an older attempt is fenced off.
		e.do("PATCH", taskPath(task.ID, "/progress"), map[string]any{"attempt": 7, "processedItems": 2}).want(t, http.StatusConflict)

		var out outputURL
		e.do("POST", taskPath(task.ID, "/output-url"), map[string]any{"fileName": "result.csv", "contentType": "text/csv", "attempt": 1}).want(t, http.StatusOK).decode(t, &out)
		output := []byte("sku,status\n1,ok\n2,ok\n")
		put(t, out.UploadURL, out.UploadMethod, out.UploadHeaders, output)
		got = e.do("PATCH", taskPath(task.ID, "/progress"), map[string]any{"attempt": 1, "processedItems": 2, "successItems": 2, "status": "completed", "outputFileName": "result.csv"}).want(t, http.StatusOK).task(t)
		if got.Status != commonops.StatusCompleted || got.Progress != 100 {
			t.Fatalf("got %s progress %v, want completed 100", got.Status, got.Progress)
		}

		for file, want := range map[string][]byte{"output": output, "input": input} {
			var d operations.Download
			e.do("GET", taskPath(task.ID, "/download?file="+file), nil).want(t, http.StatusOK).decode(t, &d)
			if body := get(t, d.DownloadURL); !bytes.Equal(body, want) {
				t.Fatalf("%s: got %q, want %q", file, body, want)
			}
		}
		e.do("GET", taskPath(task.ID, "/download?file=errors"), nil).want(t, http.StatusNotFound)

		var logs logsPage
		e.do("GET", taskPath(task.ID, "/logs?level=warn"), nil).want(t, http.StatusOK).decode(t, &logs)
		if logs.Total != 1 || len(logs.Logs) != 1 || logs.Logs[0].Message != "row 2 has no price" {
			t.Fatalf("got logs %+v, want the one warning", logs)
		}
		var events eventsPage
		e.do("GET", taskPath(task.ID, "/events"), nil).want(t, http.StatusOK).decode(t, &events)
		var types []string
		for _, ev := range events.Events {
			types = append(types, ev.EventType)
		}
		want := []string{commonops.EventCreated, commonops.EventUploadConfirmed, commonops.EventStarted, commonops.EventCompleted}
		if !containsInOrder(types, want) {
			t.Fatalf("got events %v, want %v in order", types, want)
		}

		e.do("DELETE", taskPath(task.ID), nil).want(t, http.StatusNoContent)
		e.do("GET", taskPath(task.ID), nil).want(t, http.StatusNotFound)
	})
}

// containsInOrder reports whether want is a subsequence of got.
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestRetryAndDelete covers the manual retry (with and without force) and
// the refusal to delete a task that has not ended.
func TestRetryAndDelete(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	task := e.create(map[string]any{"taskType": "export", "entityType": "order", "maxRetries": 0})
	e.do("DELETE", taskPath(task.ID), nil).want(t, http.StatusConflict)
	e.do("POST", taskPath(task.ID, "/cancel"), nil).want(t, http.StatusOK)
	p := e.do("POST", taskPath(task.ID, "/retry"), nil).want(t, http.StatusConflict).problem(t)
	if p.CurrentStatus == nil || *p.CurrentStatus != commonops.StatusCancelled {
		t.Fatalf("got currentStatus %v, want cancelled", p.CurrentStatus)
	}
	got := e.do("POST", taskPath(task.ID, "/retry?force=true"), nil).want(t, http.StatusOK).task(t)
	if got.Status != commonops.StatusPending || got.RetryCount != 1 {
		t.Fatalf("got %s retryCount %d, want pending 1", got.Status, got.RetryCount)
	}
}
