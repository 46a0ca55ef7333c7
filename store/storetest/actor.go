package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// actorTests hold every driver to recording the context's actor
// (commonops.WithActor) in the data of each event a change writes: create,
// update, claim of one task and claim of the next.
var actorTests = []test{
	{"RecordedOnEveryEvent", func(t *testing.T, s store.Store) {
		ctx := commonops.WithActor(context.Background(), "apikey:k1")
		tk, ch := newTask(t, tenantA, at(0), commonops.CreateInput{})
		if _, err := s.CreateTask(ctx, tk, ch, nil); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
		other := create(t, s, tenantA, at(0), commonops.CreateInput{TaskType: "other"})
		if _, err := s.ClaimTask(commonops.WithActor(context.Background(), "oidc:w"), tenantA, tk.ID, store.ClaimParams{WorkerID: "w", Lease: time.Minute, Now: at(1)}); err != nil {
			t.Fatalf("ClaimTask: %v", err)
		}
		if _, err := s.UpdateTask(commonops.WithActor(context.Background(), "gateway:u"), tenantA, tk.ID,
			func(x *commonops.Task) (commonops.Change, error) { return x.Cancel(at(2)) }); err != nil {
			t.Fatalf("UpdateTask: %v", err)
		}
		if got, err := s.ClaimNext(commonops.WithActor(context.Background(), "none:n"), store.ClaimParams{WorkerID: "w", Lease: time.Minute, Limit: 1, Now: at(3)}); err != nil || len(got) != 1 {
			t.Fatalf("ClaimNext: got %d tasks (err %v), want 1", len(got), err)
		}
		for _, c := range []struct {
			id   string
			want []string
		}{
			{tk.ID, []string{"apikey:k1", "oidc:w", "gateway:u"}},
			{other.ID, []string{"", "none:n"}},
		} {
			evs, err := s.ListEvents(context.Background(), tenantA, c.id, 0, 0)
			if err != nil {
				t.Fatalf("ListEvents: %v", err)
			}
			if len(evs) < len(c.want) {
				t.Fatalf("events of %s: got %d, want at least %d", c.id, len(evs), len(c.want))
			}
			for i, want := range c.want {
				var data map[string]any
				if err := json.Unmarshal(evs[i].EventData, &data); err != nil {
					t.Fatalf("event %d data %s: %v", i, evs[i].EventData, err)
				}
				got, has := data["actor"]
				if want == "" && has {
					t.Errorf("event %d (%s) of %s: got actor %v, want none", i, evs[i].EventType, c.id, got)
				}
				if want != "" && got != want {
					t.Errorf("event %d (%s) of %s: got actor %v, want %q", i, evs[i].EventType, c.id, got, want)
				}
			}
		}
	}},
}
