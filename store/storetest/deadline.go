package storetest

import (
	"context"
	"reflect"
	"testing"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

var deadlineTests = []test{
	{"SweepPastDeadline", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		limited := claim(t, s, create(t, s, tenantA, at(0), commonops.CreateInput{TimeoutSeconds: ptr(30)}), at(4)) // deadline at(34)
		claim(t, s, create(t, s, tenantB, at(1), commonops.CreateInput{}), at(4))                                   // no limit
		create(t, s, tenantA, at(2), commonops.CreateInput{TimeoutSeconds: ptr(1)})                                 // not started
		got, err := s.GetTask(ctx, tenantA, limited.ID)
		if err != nil || got.TimeoutSeconds == nil || *got.TimeoutSeconds != 30 {
			t.Fatalf("GetTask: got %+v, %v, want timeoutSeconds 30", got, err)
		}
		processing := []commonops.Status{commonops.StatusProcessing}
		for _, tc := range []struct {
			name string
			at   int
			want []store.TaskRef
		}{
			{"at the deadline", 34, []store.TaskRef{{TenantID: tenantA, ID: limited.ID}}},
			{"before it", 33, nil},
		} {
			refs, err := s.Sweep(ctx, store.SweepFilter{Statuses: processing, DeadlineBefore: ptr(at(tc.at)), Limit: 10})
			if err != nil {
				t.Fatalf("%s: Sweep: %v", tc.name, err)
			}
			if (len(refs) > 0 || len(tc.want) > 0) && !reflect.DeepEqual(refs, tc.want) {
				t.Fatalf("%s: Sweep by deadline: got %v, want %v", tc.name, refs, tc.want)
			}
		}
	}},
}
