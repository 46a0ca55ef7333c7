package postgres

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/commonops/commonops"
)

// TestEventDataOfAnActor: the event data changeArgs writes for a change
// without data is what encoding/json makes of commonops.EventData, for
// actors that need escaping too.
func TestEventDataOfAnActor(t *testing.T) {
	s := &Store{}
	task := &commonops.Task{ID: "t1"}
	for _, actor := range []string{"", "none:default", `oidc:<b>&"ada"</b>`, "key:\u2028\u2029\x01", "bad:\xff"} {
		ctx := commonops.WithActor(context.Background(), actor)
		for _, data := range []map[string]any{nil, {"reason": "x"}} {
			args, err := s.changeArgs(ctx, task, commonops.Change{Event: commonops.EventCreated, Data: data})
			if err != nil {
				t.Fatalf("changeArgs: %v", err)
			}
			want := "{}"
			if d := commonops.EventData(ctx, data); len(d) > 0 {
				b, _ := json.Marshal(d)
				want = string(b)
			}
			if args[1] != want {
				t.Errorf("actor %q, data %v: got %v, want %s", actor, data, args[1], want)
			}
		}
	}
}
