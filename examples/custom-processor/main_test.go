package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/bulk"
)

// TestStockServerWithCustomProcessors runs the example as a client would
// use it: the stock server on the embedded default, spoken to over HTTP.
// The greet task runs the custom processor and leaves its output; the
// product import runs the built-in import into the Go sink, with two bad
// rows in errors.csv.
func TestStockServerWithCustomProcessors(t *testing.T) {
	ctx := context.Background()
	sink := &memorySink{products: map[string]bulk.Record{}}
	a, err := newApp(ctx, app.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), PollInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	api := a.URL() + "/api/v1/operations"

	var greet struct{ Task struct{ ID string } }
	call(t, "POST", api+"/tasks", `{"taskType":"greet","entityType":"team","params":{"names":["Ada","Grace","Linus"]}}`, 201, &greet)
	done := waitDone(t, api, greet.Task.ID)
	if done.Status != "completed" || done.SuccessItems != 3 || done.Progress != 100 {
		t.Fatalf("got greet task %+v, want completed with 3 successes at 100%%", done)
	}
	if done.ErrorsFileName != nil {
		t.Errorf("got errorsFileName %q for a task that wrote no errors report, want null", *done.ErrorsFileName)
	}
	if got, want := download(t, api, greet.Task.ID, "output"), "Hello, Ada!\nHello, Grace!\nHello, Linus!\n"; got != want {
		t.Errorf("got output %q, want %q", got, want)
	}

	var imp struct {
		Task      struct{ ID string }
		UploadURL string
	}
	call(t, "POST", api+"/tasks", `{"taskType":"import","entityType":"product","fileName":"products.csv"}`, 201, &imp)
	csv := "sku,name,price\nA-1,Apple,0.5\nA-2,Forbidden,1\nA-3,Pear,abc\n"
	call(t, "PUT", imp.UploadURL, csv, 200, nil)
	done = waitDone(t, api, imp.Task.ID)
	if done.Status != "completed" || done.SuccessItems != 1 || done.FailedItems != 2 {
		t.Fatalf("got import %+v, want completed with 1 success and 2 failures", done)
	}
	if done.ErrorsFileName == nil || *done.ErrorsFileName != "errors.csv" {
		t.Errorf("got errorsFileName %v, want errors.csv: the import wrote its errors report", done.ErrorsFileName)
	}
	sink.mu.Lock()
	_, stored := sink.products["A-1"]
	n := len(sink.products)
	sink.mu.Unlock()
	if !stored || n != 1 {
		t.Errorf("got %d products in the sink (A-1 stored: %v), want only A-1", n, stored)
	}
	if errs := download(t, api, imp.Task.ID, "errors"); !strings.Contains(errs, "this name is not allowed") || !strings.Contains(errs, "price") {
		t.Errorf("got errors.csv %q, want the refused name and the bad price", errs)
	}
}

type taskView struct {
	Status                    string
	Progress                  float64
	SuccessItems, FailedItems int64
	ErrorsFileName            *string
}

func waitDone(t *testing.T, api, id string) taskView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v taskView
		call(t, "GET", api+"/tasks/"+id, "", 200, &v)
		if v.Status == "completed" || v.Status == "failed" || v.Status == "cancelled" {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s after 30s", id, v.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func download(t *testing.T, api, id, file string) string {
	t.Helper()
	var d struct{ DownloadURL string }
	call(t, "GET", api+"/tasks/"+id+"/download?file="+file, "", 200, &d)
	resp, err := http.Get(d.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("download %s: got %d %s, want 200", file, resp.StatusCode, b)
	}
	return string(b)
}

func call(t *testing.T, method, url, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: got %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(fmt.Errorf("decode %s: %w", b, err))
		}
	}
}
