package webhook

import (
	"testing"
	"time"
)

// TestSignDocumentedVector pins the key derivation and the signature to the
// values the README's openssl commands give for the same inputs.
func TestSignDocumentedVector(t *testing.T) {
	t.Parallel()
	key := TenantKey("s3cret", "tenant-a")
	if want := "bb8ac02f2b2774928086c3e0aa66e8513bb2e16bde104e363cf7cf1279feeb95"; key != want {
		t.Fatalf("TenantKey: got %s, want %s", key, want)
	}
	ts := time.Unix(1700000000, 0)
	sig := Sign(key, ts, []byte(`{"a":1}`))
	if want := "v1=11ff21eb5e2e83f97206a1b9d7fe93515e76afa4b1108d05085da848bb360155"; sig != want {
		t.Fatalf("Sign: got %s, want %s", sig, want)
	}
	for _, tc := range []struct {
		name      string
		timestamp string
		sig       string
		body      string
		now       time.Time
		want      bool
	}{
		{"valid", "1700000000", sig, `{"a":1}`, ts.Add(time.Minute), true},
		{"body changed", "1700000000", sig, `{"a":2}`, ts, false},
		{"timestamp changed", "1700000001", sig, `{"a":1}`, ts, false},
		{"too old", "1700000000", sig, `{"a":1}`, ts.Add(6 * time.Minute), false},
		{"not a number", "soon", sig, `{"a":1}`, ts, false},
	} {
		if got := Verify(key, tc.timestamp, tc.sig, []byte(tc.body), 5*time.Minute, tc.now); got != tc.want {
			t.Errorf("%s: Verify got %v, want %v", tc.name, got, tc.want)
		}
	}
}
