package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// readTimeout is the bound RunReadTimeout gives its stores: long enough to
// tell from "at once", short enough for a quick test.
const readTimeout = 200 * time.Millisecond

// RunReadTimeout proves a driver's read timeout (store.ReadTimeoutDefault
// and the drivers' Config.ReadTimeout). open returns a fresh store whose
// reads are bounded by the timeout it is given; hold makes that store's
// reads wait (a lock or its only connection taken elsewhere) until release
// is called. Each read the API serves runs once first (so a driver that
// prepares statements has them prepared: see postgres.Config.ReadTimeout);
// held, it must then fail with
// store.ReadTimeoutError soon after the timeout, not wait for the holder,
// and work again once it lets go.
func RunReadTimeout(t *testing.T, open func(t *testing.T, timeout time.Duration) store.Store, hold func(t *testing.T, s store.Store) (release func())) {
	s := open(t, readTimeout)
	ctx := context.Background()
	tk := create(t, s, tenantA, at(0), commonops.CreateInput{})
	if err := s.AppendLogs(ctx, tenantA, tk.ID, nil, []commonops.LogEntry{{Level: commonops.LogInfo, Message: "line", CreatedAt: at(1)}}); err != nil {
		t.Fatalf("AppendLogs: %v", err)
	}
	reads := []struct {
		name string
		read func() error
	}{
		{"GetTask", func() error { _, err := s.GetTask(ctx, tenantA, tk.ID); return err }},
		{"ListTasks", func() error { _, _, err := s.ListTasks(ctx, commonops.ListFilter{TenantID: tenantA}); return err }},
		{"ListLogs", func() error {
			_, _, err := s.ListLogs(ctx, commonops.LogFilter{TenantID: tenantA, TaskID: tk.ID})
			return err
		}},
		{"ListEvents", func() error { _, err := s.ListEvents(ctx, tenantA, tk.ID, 0, 0); return err }},
	}
	for _, r := range reads {
		if err := r.read(); err != nil {
			t.Fatalf("%s before holding: %v", r.name, err)
		}
		release := hold(t, s)
		start := time.Now()
		err := r.read()
		took := time.Since(start)
		release()
		wantCode(t, r.name+" while held", err, commonops.EUNAVAILABLE)
		if msg, want := commonops.ErrorMessage(err), "took longer than "+readTimeout.String(); !strings.Contains(msg, want) {
			t.Errorf("%s while held: got message %q, want it to say %q", r.name, msg, want)
		}
		if took < readTimeout || took > readTimeout+time.Second {
			t.Errorf("%s while held: failed after %v, want soon after %v", r.name, took, readTimeout)
		}
		if err := r.read(); err != nil {
			t.Errorf("%s once released: %v", r.name, err)
		}
	}
}
