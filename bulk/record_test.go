package bulk

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCoerceNumberKeepsText: a number cell keeps its written text, and
// only JSON numbers are numbers.
func TestCoerceNumberKeepsText(t *testing.T) {
	f := Field{Type: "number"}
	for _, s := range []string{"4.90", "-0.000100", "1e3", "2E-7", "0", "123456789012345678901234567890.10", " 7.50 "} {
		v, ok, err := f.Coerce(s)
		want := json.Number(strings.TrimSpace(s))
		if err != nil || !ok || v != want {
			t.Errorf("Coerce(%q): got %#v %v %v, want %q", s, v, ok, err, want)
		}
	}
	for _, s := range []string{".5", "+1", "1,5", "NaN", "Inf", "01", "1.", "1e", "0x10", "--1"} {
		if _, _, err := f.Coerce(s); err == nil {
			t.Errorf("Coerce(%q): got no error, want \"is not a number\"", s)
		}
	}
}
