package operations

import (
	"strings"
	"testing"
	"time"
)

// TestClockDST proves the documented daylight-saving behaviour of
// schedule ticks in America/New_York, where 2026-03-08 skips 02:00-03:00
// EST and 2026-11-01 repeats 01:00-02:00.
func TestClockDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name, cron string
		after      string
		want       []string
	}{
		{"daily in the skipped hour fires once when the clock jumps", "30 2 * * *", "2026-03-07T03:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"every 15 minutes across the skipped hour", "*/15 * * * *", "2026-03-08T01:30:00-05:00",
			[]string{"2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"}},
		{"daily in the repeated hour fires once, at the first 01:30", "30 1 * * *", "2026-10-31T02:00:00-04:00",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"every 30 minutes runs the repeated hour once", "*/30 * * * *", "2026-11-01T00:45:00-04:00",
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:30:00-05:00"}},
		{"a descriptor reads the zone's midnight", "@daily", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fe := parseClock(tc.cron, "America/New_York")
			if len(fe) > 0 {
				t.Fatalf("parseClock(%q): %v", tc.cron, fe)
			}
			got := c.runs(at(tc.after), len(tc.want))
			var gs, ws []string
			for i := range got {
				gs = append(gs, got[i].In(ny).Format(time.RFC3339))
			}
			for _, w := range tc.want {
				ws = append(ws, at(w).In(ny).Format(time.RFC3339))
			}
			if strings.Join(gs, " ") != strings.Join(ws, " ") {
				t.Fatalf("ticks after %s: got %v, want %v", tc.after, gs, ws)
			}
		})
	}
}

// TestParseClockRefuses checks each refused expression and zone names the
// field and why.
func TestParseClockRefuses(t *testing.T) {
	tests := []struct {
		name, cron, zone, field, msg string
	}{
		{"empty", "", "UTC", "cron", "is required"},
		{"six fields", "0 0 0 * * *", "UTC", "cron", "is not a valid cron expression"},
		{"out of range", "61 * * * *", "UTC", "cron", "is not a valid cron expression"},
		{"words", "every day", "UTC", "cron", "is not a valid cron expression"},
		{"every", "@every 5m", "UTC", "cron", "@every is not supported"},
		{"zone in the expression", "CRON_TZ=UTC 0 0 * * *", "UTC", "cron", "must not name a time zone"},
		{"never", "0 0 30 2 *", "UTC", "cron", "matches no date"},
		{"unknown zone", "0 0 * * *", "Mars/Olympus", "timeZone", `"Mars/Olympus" is not an IANA time zone`},
		{"local", "0 0 * * *", "Local", "timeZone", "not Local"},
		{"path", "0 0 * * *", "../../etc/passwd", "timeZone", "is not an IANA time zone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, fe := parseClock(tc.cron, tc.zone)
			if len(fe) != 1 || fe[0].Field != tc.field || !strings.Contains(fe[0].Message, tc.msg) {
				t.Fatalf("parseClock(%q, %q): got %+v, want one problem on %s containing %q", tc.cron, tc.zone, fe, tc.field, tc.msg)
			}
		})
	}
}
