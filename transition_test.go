package commonops_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/commonops/commonops"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func newTask(t *testing.T, in commonops.CreateInput) *commonops.Task {
	t.Helper()
	if in.TaskType == "" {
		in.TaskType = "export"
	}
	if in.EntityType == "" {
		in.EntityType = "product"
	}
	task, _, err := commonops.NewTask("11111111-1111-4111-8111-111111111111", "acme", "alice", in, commonops.Limits{}, t0)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	return task
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := commonops.ErrorCode(err); got != code {
		t.Fatalf("error code: got %q (%v), want %q", got, err, code)
	}
}

func ptr[T any](v T) *T { return &v }

// The full matrix of docs/design.md §2: every (status, action) pair either makes
// the documented move or is refused with ECONFLICT and leaves the task as is.
func TestTransitionMatrix(t *testing.T) {
	actions := map[string]func(*commonops.Task, time.Time) (commonops.Change, error){
		"claim": func(k *commonops.Task, now time.Time) (commonops.Change, error) {
			return k.Claim("w1", time.Minute, now)
		},
		"cancel": func(k *commonops.Task, now time.Time) (commonops.Change, error) { return k.Cancel(now) },
		"retry":  func(k *commonops.Task, now time.Time) (commonops.Change, error) { return k.Retry(false, now) },
		"promote": func(k *commonops.Task, now time.Time) (commonops.Change, error) {
			return k.Promote(now)
		},
		"complete": func(k *commonops.Task, now time.Time) (commonops.Change, error) {
			return k.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, now)
		},
		"fail": func(k *commonops.Task, now time.Time) (commonops.Change, error) {
			return k.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusFailed), ErrorMessage: ptr("boom")}, time.Minute, time.Second, now)
		},
	}
	// want: the status after the action, or "" for a refusal.
	want := map[commonops.Status]map[string]commonops.Status{
		commonops.StatusScheduled:  {"promote": commonops.StatusPending, "cancel": commonops.StatusCancelled},
		commonops.StatusPending:    {"claim": commonops.StatusProcessing, "cancel": commonops.StatusCancelled},
		commonops.StatusProcessing: {"complete": commonops.StatusCompleted, "fail": commonops.StatusPending, "cancel": commonops.StatusCancelled},
		commonops.StatusCompleted:  {},
		commonops.StatusFailed:     {"retry": commonops.StatusPending},
		commonops.StatusCancelled:  {"retry": commonops.StatusPending},
	}
	for _, from := range commonops.Statuses {
		for name, act := range actions {
			t.Run(string(from)+"/"+name, func(t *testing.T) {
				k := newTask(t, commonops.CreateInput{})
				k.Status = from
				if from == commonops.StatusProcessing {
					k.Attempt = 1
				}
				before := *k
				ch, err := act(k, t0.Add(time.Hour))
				to, allowed := want[from][name]
				if !allowed {
					wantCode(t, err, commonops.ECONFLICT)
					var e *commonops.Error
					if !errors.As(err, &e) || e.Task == nil || e.Task.Status != from {
						t.Fatalf("conflict should carry the current state %q, got %+v", from, e)
					}
					if k.Status != before.Status || k.Version != before.Version {
						t.Fatalf("refused %s changed the task: status %s version %d", name, k.Status, k.Version)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s from %s: %v", name, from, err)
				}
				if k.Status != to {
					t.Fatalf("status: got %s, want %s", k.Status, to)
				}
				if k.Version != before.Version+1 {
					t.Fatalf("version: got %d, want %d", k.Version, before.Version+1)
				}
				if ch.Event == "" {
					t.Fatalf("a state change must record an event")
				}
			})
		}
	}
}

func TestClaimStartsAttemptWithLease(t *testing.T) {
	k := newTask(t, commonops.CreateInput{})
	ch, err := k.Claim("w1", 30*time.Second, t0)
	if err != nil {
		t.Fatal(err)
	}
	if k.Attempt != 1 || *k.LeaseOwner != "w1" || !k.LeaseExpiresAt.Equal(t0.Add(30*time.Second)) || !k.StartedAt.Equal(t0) {
		t.Fatalf("got attempt %d owner %v lease %v started %v", k.Attempt, *k.LeaseOwner, k.LeaseExpiresAt, k.StartedAt)
	}
	if ch.Event != commonops.EventStarted || ch.Topic != "" {
		t.Fatalf("change: got %+v, want a started event and no topic", ch)
	}
	_, err = k.Claim("w2", time.Second, t0)
	wantCode(t, err, commonops.ECONFLICT)
}

func TestNotClaimable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*commonops.Task)
	}{
		{"awaiting upload", func(k *commonops.Task) { k.UploadStatus = commonops.UploadAwaiting }},
		{"upload expired", func(k *commonops.Task) { k.UploadStatus = commonops.UploadExpired }},
		{"backing off", func(k *commonops.Task) { k.AvailableAt = ptr(t0.Add(time.Second)) }},
		{"scheduled", func(k *commonops.Task) { k.Status = commonops.StatusScheduled }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTask(t, commonops.CreateInput{})
			tt.setup(k)
			_, err := k.Claim("w", time.Second, t0)
			wantCode(t, err, commonops.ECONFLICT)
		})
	}
}

func TestProgress(t *testing.T) {
	claimed := func(t *testing.T) *commonops.Task {
		k := newTask(t, commonops.CreateInput{})
		if _, err := k.Claim("w", time.Second, t0); err != nil {
			t.Fatal(err)
		}
		return k
	}
	t.Run("percent computed from counts and lease renewed", func(t *testing.T) {
		k := claimed(t)
		ch, err := k.ApplyProgress(commonops.Progress{TotalItems: ptr[int64](200), ProcessedItems: ptr[int64](50)}, time.Minute, 0, t0.Add(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if k.Progress != 25 {
			t.Fatalf("progress: got %v, want 25", k.Progress)
		}
		// Renewed by the length the worker claimed (1s), not the default.
		if !k.LeaseExpiresAt.Equal(t0.Add(3 * time.Second)) {
			t.Fatalf("lease: got %v, want %v", k.LeaseExpiresAt, t0.Add(3*time.Second))
		}
		if ch.Topic != commonops.TopicProgress {
			t.Fatalf("first progress should publish, got %+v", ch)
		}
		ch, _ = k.ApplyProgress(commonops.Progress{ProcessedItems: ptr[int64](60)}, time.Minute, 0, t0.Add(2500*time.Millisecond))
		if !ch.None() {
			t.Fatalf("a second progress within %s should not publish, got %+v", commonops.ProgressEventInterval, ch)
		}
		ch, _ = k.ApplyProgress(commonops.Progress{ProcessedItems: ptr[int64](70)}, time.Minute, 0, t0.Add(3*time.Second))
		if ch.Topic != commonops.TopicProgress {
			t.Fatalf("progress after the interval should publish, got %+v", ch)
		}
	})
	t.Run("a long claimed lease is renewed at its length", func(t *testing.T) {
		k := newTask(t, commonops.CreateInput{})
		if _, err := k.Claim("w", 10*time.Minute, t0); err != nil {
			t.Fatal(err)
		}
		now := t0.Add(2 * time.Minute)
		if _, err := k.ApplyProgress(commonops.Progress{ProcessedItems: ptr[int64](1)}, 30*time.Second, 0, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(5 * time.Minute)
		if _, err := k.Heartbeat(ptr(1), 30*time.Second, now); err != nil {
			t.Fatal(err)
		}
		if want := now.Add(10 * time.Minute); !k.LeaseExpiresAt.Equal(want) {
			t.Fatalf("lease: got %v, want %v", k.LeaseExpiresAt, want)
		}
	})
	t.Run("text with NUL refused", func(t *testing.T) {
		k := claimed(t)
		_, err := k.ApplyProgress(commonops.Progress{Message: ptr("a\x00b")}, time.Minute, 0, t0)
		wantCode(t, err, commonops.EINVALID)
		_, err = k.ApplyProgress(commonops.Progress{ErrorMessage: ptr("bad \xff utf-8")}, time.Minute, 0, t0)
		wantCode(t, err, commonops.EINVALID)
	})
	t.Run("release hands back without a retry", func(t *testing.T) {
		k := claimed(t)
		ch, err := k.Release(ptr(1), t0)
		if err != nil || k.Status != commonops.StatusPending || k.RetryCount != 0 || k.LeaseOwner != nil || ch.Topic != commonops.TopicRetried {
			t.Fatalf("got %v status %s retryCount %d owner %v topic %q", err, k.Status, k.RetryCount, k.LeaseOwner, ch.Topic)
		}
		_, err = k.Release(ptr(1), t0)
		wantCode(t, err, commonops.ECONFLICT)
	})
	t.Run("counts never go backwards", func(t *testing.T) {
		k := claimed(t)
		if _, err := k.ApplyProgress(commonops.Progress{ProcessedItems: ptr[int64](10)}, time.Minute, 0, t0); err != nil {
			t.Fatal(err)
		}
		v := k.Version
		_, err := k.ApplyProgress(commonops.Progress{ProcessedItems: ptr[int64](9)}, time.Minute, 0, t0)
		wantCode(t, err, commonops.EINVALID)
		if k.ProcessedItems != 10 || k.Version != v {
			t.Fatalf("refused update changed the task: processed %d version %d", k.ProcessedItems, k.Version)
		}
	})
	t.Run("invalid values", func(t *testing.T) {
		for _, p := range []commonops.Progress{
			{ProcessedItems: ptr[int64](-1)},
			{Progress: ptr(101.0)},
			{Status: ptr(commonops.StatusCancelled)},
			{Attempt: ptr(0)},
		} {
			k := claimed(t)
			_, err := k.ApplyProgress(p, time.Minute, 0, t0)
			wantCode(t, err, commonops.EINVALID)
		}
	})
	t.Run("stale attempt refused", func(t *testing.T) {
		k := claimed(t)
		_, err := k.ApplyProgress(commonops.Progress{Attempt: ptr(2), ProcessedItems: ptr[int64](1)}, time.Minute, 0, t0)
		wantCode(t, err, commonops.ECONFLICT)
	})
	t.Run("cancelled task answers conflict with cancelRequested", func(t *testing.T) {
		k := claimed(t)
		if _, err := k.Cancel(t0); err != nil {
			t.Fatal(err)
		}
		_, err := k.ApplyProgress(commonops.Progress{Attempt: ptr(1)}, time.Minute, 0, t0)
		var e *commonops.Error
		if !errors.As(err, &e) || e.Code != commonops.ECONFLICT || !e.Task.CancelRequested {
			t.Fatalf("got %v, want a conflict carrying cancelRequested", err)
		}
	})
	t.Run("checkpoint kept across attempts, counts too", func(t *testing.T) {
		k := claimed(t)
		_, err := k.ApplyProgress(commonops.Progress{ProcessedItems: ptr[int64](500), Checkpoint: json.RawMessage(`{"row":500}`)}, time.Minute, 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		k.FailAttempt("sink down", false, 0, t0)
		if _, err := k.Claim("w2", time.Second, t0); err != nil {
			t.Fatal(err)
		}
		if string(k.Checkpoint) != `{"row":500}` || k.ProcessedItems != 500 {
			t.Fatalf("resume point lost: checkpoint %s processed %d", k.Checkpoint, k.ProcessedItems)
		}
	})
	t.Run("estimated total until an exact one, eta until the attempt ends", func(t *testing.T) {
		k := claimed(t)
		if _, err := k.ApplyProgress(commonops.Progress{TotalItems: ptr[int64](300), TotalItemsEstimated: ptr(true), EtaSeconds: ptr[int64](40)}, time.Minute, 0, t0); err != nil {
			t.Fatal(err)
		}
		if !k.TotalItemsEstimated || k.EtaSeconds == nil || *k.EtaSeconds != 40 {
			t.Fatalf("got estimated %v eta %v, want true and 40", k.TotalItemsEstimated, k.EtaSeconds)
		}
		if _, err := k.ApplyProgress(commonops.Progress{TotalItems: ptr[int64](301)}, time.Minute, 0, t0); err != nil {
			t.Fatal(err)
		}
		if k.TotalItemsEstimated {
			t.Errorf("got estimated true after a total without the flag, want false (exact)")
		}
		if _, err := k.ApplyProgress(commonops.Progress{EtaSeconds: ptr[int64](-1)}, time.Minute, 0, t0); commonops.ErrorCode(err) != commonops.EINVALID {
			t.Errorf("got %v for etaSeconds -1, want EINVALID", err)
		}
		if _, err := k.ApplyProgress(commonops.Progress{Status: ptr(commonops.StatusCompleted)}, time.Minute, 0, t0); err != nil {
			t.Fatal(err)
		}
		if k.EtaSeconds != nil {
			t.Errorf("got eta %d on a completed task, want null", *k.EtaSeconds)
		}
	})
	t.Run("a new attempt forgets the eta of the last", func(t *testing.T) {
		k := claimed(t)
		if _, err := k.ApplyProgress(commonops.Progress{EtaSeconds: ptr[int64](40), Checkpoint: json.RawMessage(`{"row":5}`)}, time.Minute, 0, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := k.ExpireLease(0, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if k.EtaSeconds != nil {
			t.Errorf("got eta %d after the attempt ended, want null", *k.EtaSeconds)
		}
	})
}

func TestFailAttemptRetriesThenFails(t *testing.T) {
	k := newTask(t, commonops.CreateInput{MaxRetries: ptr(2)})
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Hour)
		if _, err := k.Claim("w", time.Second, now); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		ch := k.FailAttempt("boom", false, time.Duration(i)*time.Second, now)
		if i <= 2 {
			if k.Status != commonops.StatusPending || k.RetryCount != i || !k.AvailableAt.Equal(now.Add(time.Duration(i)*time.Second)) || ch.Topic != commonops.TopicRetried {
				t.Fatalf("attempt %d: got status %s retryCount %d availableAt %v topic %s", i, k.Status, k.RetryCount, k.AvailableAt, ch.Topic)
			}
			continue
		}
		if k.Status != commonops.StatusFailed || *k.ErrorMessage != "boom" || ch.Topic != commonops.TopicFailed {
			t.Fatalf("after retries: got status %s error %v topic %s", k.Status, k.ErrorMessage, ch.Topic)
		}
	}
	// Manual retry respects maxRetries unless forced.
	_, err := k.Retry(false, t0)
	wantCode(t, err, commonops.ECONFLICT)
	if _, err := k.Retry(true, t0); err != nil || k.Status != commonops.StatusPending {
		t.Fatalf("forced retry: got %v status %s", err, k.Status)
	}
}

func TestPermanentFailureNotRetried(t *testing.T) {
	k := newTask(t, commonops.CreateInput{})
	if _, err := k.Claim("w", time.Second, t0); err != nil {
		t.Fatal(err)
	}
	k.FailAttempt("bad schema", true, time.Second, t0)
	if k.Status != commonops.StatusFailed || k.RetryCount != 0 {
		t.Fatalf("got status %s retryCount %d, want failed with no retry", k.Status, k.RetryCount)
	}
}

func TestExpireLease(t *testing.T) {
	k := newTask(t, commonops.CreateInput{})
	if _, err := k.Claim("w", 10*time.Second, t0); err != nil {
		t.Fatal(err)
	}
	_, err := k.ExpireLease(time.Second, t0.Add(5*time.Second))
	wantCode(t, err, commonops.ECONFLICT)
	ch, err := k.ExpireLease(time.Second, t0.Add(10*time.Second))
	if err != nil || k.Status != commonops.StatusPending || ch.Event != commonops.EventLeaseExpired {
		t.Fatalf("got %v status %s event %s", err, k.Status, ch.Event)
	}
}

func TestUploadLifecycle(t *testing.T) {
	k := newTask(t, commonops.CreateInput{FileName: ptr("in.csv")})
	if k.UploadStatus != commonops.UploadAwaiting || k.Runnable(t0) {
		t.Fatalf("a task awaiting its file must not be runnable: %s", k.UploadStatus)
	}
	ch, err := k.ConfirmUpload(t0)
	if err != nil || ch.Topic != commonops.TopicCreated || !k.Runnable(t0) {
		t.Fatalf("confirm: got %v topic %q runnable %v", err, ch.Topic, k.Runnable(t0))
	}
	if ch, err := k.ConfirmUpload(t0); err != nil || !ch.None() {
		t.Fatalf("second confirm should be a no-op, got %v %+v", err, ch)
	}

	lost := newTask(t, commonops.CreateInput{FileName: ptr("in.csv")})
	if _, err := lost.ExpireUpload(t0); err != nil {
		t.Fatal(err)
	}
	if lost.Status != commonops.StatusFailed || lost.UploadStatus != commonops.UploadExpired {
		t.Fatalf("got %s/%s, want failed/expired", lost.Status, lost.UploadStatus)
	}
	_, err = lost.Retry(true, t0)
	wantCode(t, err, commonops.ECONFLICT)
}

func TestScheduledPromotion(t *testing.T) {
	at := t0.Add(time.Hour)
	k := newTask(t, commonops.CreateInput{ScheduledAt: &at})
	if k.Status != commonops.StatusScheduled {
		t.Fatalf("status: got %s, want scheduled", k.Status)
	}
	_, err := k.Promote(at.Add(-time.Second))
	wantCode(t, err, commonops.ECONFLICT)
	ch, err := k.Promote(at)
	if err != nil || k.Status != commonops.StatusPending || ch.Topic != commonops.TopicCreated {
		t.Fatalf("got %v status %s topic %q", err, k.Status, ch.Topic)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n        int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 500 * time.Millisecond, time.Second},
		{3, 0.5, 3 * time.Second, 3 * time.Second},
		{40, 0.999, 150 * time.Second, 5 * time.Minute},
		{0, 0, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		got := commonops.Backoff(tt.n, time.Second, 5*time.Minute, tt.rnd)
		if got < tt.min || got > tt.max {
			t.Errorf("Backoff(%d, rnd=%v): got %s, want within [%s, %s]", tt.n, tt.rnd, got, tt.min, tt.max)
		}
	}
}
