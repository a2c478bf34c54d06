package safetext

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"hello, world", "hello, world"},
		{"grüße 👋 日本", "grüße 👋 日本"},
		{"first\nMEMBER2: fake line", "first MEMBER2: fake line"},
		{"a\rb\tc", "a b c"},
		{"\x1b]52;c;ZXZpbA==\x07clip", "]52;c;ZXZpbA==clip"},
		{"\x1b[2K\x1b[1Aup", "[2K[1Aup"},
		{"\u009b31mC1 CSI\u009d", "31mC1 CSI"},
		{"abc\u202egnp.exe", "abcgnp.exe"},
		{"\u2066iso\u2069 \u200dzwj\ufeff", "iso zwj"},
		{"bad \xff\xfe utf8", "bad  utf8"},
		{"del\x7f", "del"},
	} {
		if got := Line(tt.in); got != tt.want {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b]52;c;AA==\x07", "a\u202eb", "\xff", "x\u0085y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Line(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Line(%q) = %q: invalid UTF-8", s, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("Line(%q) = %q keeps %U", s, out, r)
			}
		}
		if Line(out) != out {
			t.Fatalf("Line is not idempotent on %q", s)
		}
		if len(out) > len(s) {
			t.Fatalf("Line(%q) grew to %q", s, out)
		}
	})
}
