package tabular

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestValidUTF8Fields checks the one-pass check against each field's own,
// including fields that split one character between them.
func TestValidUTF8Fields(t *testing.T) {
	for _, fields := range [][]string{
		{"a", "é", ""},
		{"a\xc3", "\xa9b"}, // "aéb" end to end, but neither field is valid
		{"\xa9"},
		{"ok", "bad\xff"},
		{"", "\xe2\x82", "\xac"},
	} {
		want := true
		for _, f := range fields {
			want = want && utf8.ValidString(f)
		}
		if got := validUTF8Fields(strings.Join(fields, ""), fields); got != want {
			t.Errorf("validUTF8Fields(%q) = %v, want %v", fields, got, want)
		}
	}
}
