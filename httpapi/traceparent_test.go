package httpapi

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/outbox"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestTraceParentReachesOutbox creates tasks with good and bad traceparent
// headers and reads the outbox rows the creates wrote: a valid header is
// recorded, an invalid one is ignored.
func TestTraceParentReachesOutbox(t *testing.T) {
	t.Parallel()
	st := testdb.SQLite(t)
	e := newEnv(t, st, func(c *Config) { c.Logger = discard })
	cases := []struct {
		name, header, want string
	}{
		{"valid", validTP, validTP},
		{"unsampled", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
		{"absent", "", ""},
		{"uppercase hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", ""},
		{"version 01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"too long", validTP + "-00", ""},
		{"too short", validTP[:54], ""},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"bad flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", ""},
		{"wrong separator", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
	}
	want := map[string]string{} // task id -> traceparent
	for _, c := range cases {
		var hdr []string
		if c.header != "" {
			hdr = []string{"traceparent", c.header}
		}
		want[e.create(simple, hdr...).ID] = c.want
	}
	got := map[string]string{}
	for {
		n, err := st.DeliverOutbox(context.Background(), 100, func(_ context.Context, msgs []outbox.Message) (int, error) {
			for _, m := range msgs {
				got[m.TaskID] = m.TraceParent
			}
			return len(msgs), nil
		})
		if err != nil {
			t.Fatalf("DeliverOutbox: %v", err)
		}
		if n == 0 {
			break
		}
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok || g != w {
			t.Errorf("outbox row of task %s: got traceparent %q (row found %v), want %q", id, g, ok, w)
		}
	}
	if len(got) != len(cases) {
		t.Errorf("outbox rows: got %d, want %d", len(got), len(cases))
	}
}

// TestRepeatedTraceParentIgnored checks that a request with two traceparent
// headers carries none into its context.
func TestRepeatedTraceParentIgnored(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Add("traceparent", validTP)
	if got := traceParent(r); got != validTP {
		t.Fatalf("one header: got %q, want %q", got, validTP)
	}
	r.Header.Add("traceparent", validTP)
	if got := traceParent(r); got != "" {
		t.Fatalf("two headers: got %q, want none", got)
	}
}
