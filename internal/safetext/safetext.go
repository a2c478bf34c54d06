// Package safetext makes text from other members and from the server safe
// to print on a terminal: no escape sequences (ESC, CSI, OSC 52 clipboard
// writes), no carriage returns or newlines that fake lines from someone
// else, no bidi or other format characters that reorder what is shown.
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s as one printable line: whitespace controls (newline, tab,
// carriage return…) become a space, every other control character
// (C0, DEL, C1 including the 8-bit CSI and OSC), every format character
// (Unicode category Cf: bidi embeddings, overrides and isolates, zero-width
// joiners…) and invalid UTF-8 are dropped.
func Line(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n <= 1:
		case unicode.IsControl(r) && unicode.IsSpace(r):
			b.WriteByte(' ')
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clean reports whether s needs no change: the common case costs no copy.
func clean(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n <= 1) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
		i += n
	}
	return true
}
