package commonops_test

import (
	"testing"
	"time"

	"github.com/commonops/commonops"
)

func TestConfirmInputKeepsFirstETag(t *testing.T) {
	task := newTask(t, commonops.CreateInput{FileName: ptr("in.csv")})
	if _, err := task.ConfirmInput("etag-1", 10, t0); err != nil {
		t.Fatalf("ConfirmInput: %v", err)
	}
	if task.UploadStatus != commonops.UploadUploaded || task.InputETag == nil || *task.InputETag != "etag-1" {
		t.Fatalf("after ConfirmInput: got upload %s, ETag %v; want uploaded, etag-1", task.UploadStatus, task.InputETag)
	}
	ch, err := task.ConfirmInput("etag-2", 20, t0.Add(time.Second))
	if err != nil || !ch.None() {
		t.Fatalf("ConfirmInput again: got %+v, %v; want no change", ch, err)
	}
	if *task.InputETag != "etag-1" {
		t.Errorf("ETag after a second confirmation: got %s, want etag-1 (the file first confirmed)", *task.InputETag)
	}
	if task.StoredBytes != 10 {
		t.Errorf("StoredBytes after two confirmations: got %d, want 10 (the size first confirmed, once)", task.StoredBytes)
	}
}

func TestConfirmOutputOnlyWhenCompleted(t *testing.T) {
	task := newTask(t, commonops.CreateInput{})
	if _, err := task.Claim("w1", time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	done := commonops.StatusCompleted
	if _, err := task.ApplyProgress(commonops.Progress{OutputFileName: ptr("out.csv")}, time.Minute, 0, t0); err != nil {
		t.Fatal(err)
	}
	task.ConfirmOutput("key", "etag", 5)
	if task.OutputObject != nil || task.OutputETag != nil {
		t.Fatalf("ConfirmOutput while processing: got %v, %v; want nothing recorded", task.OutputObject, task.OutputETag)
	}
	if _, err := task.ApplyProgress(commonops.Progress{Status: &done}, time.Minute, 0, t0); err != nil {
		t.Fatal(err)
	}
	task.ConfirmOutput("key", "etag", 5)
	if task.OutputObject == nil || *task.OutputObject != "key" || task.OutputETag == nil || *task.OutputETag != "etag" {
		t.Errorf("ConfirmOutput when completed: got %v, %v; want key, etag", task.OutputObject, task.OutputETag)
	}
	task.ConfirmOutput("key2", "etag2", 7)
	task.ConfirmErrors(3)
	if task.StoredBytes != 8 || *task.OutputObject != "key" {
		t.Errorf("StoredBytes after output, again, and errors: got %d (output %s), want 8 (key: 5 + errors 3)", task.StoredBytes, *task.OutputObject)
	}
}

func TestAcceptsUploads(t *testing.T) {
	done := commonops.StatusCompleted
	awaiting := newTask(t, commonops.CreateInput{FileName: ptr("in.csv")})
	if err := awaiting.AcceptsInput("in.csv"); err != nil {
		t.Errorf("AcceptsInput while awaiting: got %v, want nil", err)
	}
	wantCode(t, awaiting.AcceptsInput("other.csv"), commonops.ECONFLICT)
	cancelled := awaiting.Clone()
	if _, err := cancelled.Cancel(t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, cancelled.AcceptsInput("in.csv"), commonops.ECONFLICT)
	if _, err := awaiting.ConfirmInput("etag", 1, t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, awaiting.AcceptsInput("in.csv"), commonops.ECONFLICT)

	running := awaiting
	wantCode(t, running.AcceptsOutput(1), commonops.ECONFLICT) // pending, not claimed yet
	if _, err := running.Claim("w1", time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	if err := running.AcceptsOutput(1); err != nil {
		t.Errorf("AcceptsOutput of the running attempt: got %v, want nil", err)
	}
	wantCode(t, running.AcceptsOutput(2), commonops.ECONFLICT)
	if _, err := running.ApplyProgress(commonops.Progress{Status: &done}, time.Minute, 0, t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, running.AcceptsOutput(1), commonops.ECONFLICT)
}
