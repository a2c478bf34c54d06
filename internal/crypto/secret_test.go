package crypto

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

var miniCodeRe = regexp.MustCompile(`^([0-9A-HJKMNP-TV-Z]{4}-){6}[0-9A-HJKMNP-TV-Z]{3}$`)

func TestNewSecret(t *testing.T) {
	seen := map[Secret]bool{}
	for i := 0; i < 100; i++ {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatal("NewSecret repeated a secret")
		}
		seen[s] = true
	}
}

func TestSecretForms(t *testing.T) {
	s := testSecret(t)
	if f := s.Fragment(); len(f) != 22 || strings.ContainsAny(f, "=+/") {
		t.Errorf("Fragment() = %q, want 22 base64url chars", f)
	}
	tests := []struct{ base, want string }{
		{"https://host:8080", "https://host:8080/#" + s.Fragment()},
		{"https://host:8080/", "https://host:8080/#" + s.Fragment()},
		{"https://host//", "https://host/#" + s.Fragment()},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/#" + s.Fragment()},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			if got := s.Link(tt.base); got != tt.want {
				t.Errorf("Link(%q) = %q, want %q", tt.base, got, tt.want)
			}
		})
	}
	if c := s.MiniCode(); !miniCodeRe.MatchString(c) {
		t.Errorf("MiniCode() = %q, want 27 grouped Crockford symbols", c)
	}
}

func TestRoundTrips(t *testing.T) {
	secrets := []Secret{{}, testSecret(t)}
	var ones Secret
	for i := range ones {
		ones[i] = 0xff
	}
	secrets = append(secrets, ones)
	for i := 0; i < 500; i++ {
		s, _ := NewSecret()
		secrets = append(secrets, s)
	}
	for _, s := range secrets {
		for _, in := range []string{
			s.Fragment(), "#" + s.Fragment(), s.MiniCode(),
			s.Link("https://example.org:8443"), s.Link("http://10.0.0.2:8080/"),
		} {
			server, got, err := ParseInvite(in)
			if err != nil || got != s {
				t.Fatalf("ParseInvite(form of %x) = %x, %v", s, got, err)
			}
			if strings.Contains(in, "://") == (server == "") {
				t.Fatalf("ParseInvite(%q) server = %q", in, server)
			}
		}
	}
}

func TestMiniCodeSubstitutions(t *testing.T) {
	for _, s := range []Secret{testSecret(t), {}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		code := strings.ReplaceAll(s.MiniCode(), "-", "")
		if len(code) != 27 {
			t.Fatalf("code %q has %d symbols", code, len(code))
		}
		for pos := 0; pos < len(code); pos++ {
			for _, sym := range crockford + "U*#" {
				if byte(sym) == code[pos] {
					continue
				}
				typo := code[:pos] + string(sym) + code[pos+1:]
				_, _, err := ParseInvite(typo)
				want := ErrTypo
				if strings.ContainsRune("U*#", sym) {
					want = ErrBadSecret
				}
				if !errors.Is(err, want) {
					t.Fatalf("substitution %q at %d of %x: err = %v, want %v", sym, pos, s, err, want)
				}
			}
		}
	}
}

func TestMiniCodeTranspositions(t *testing.T) {
	detected, total := 0, 0
	for i := 0; i < 200; i++ {
		s, _ := NewSecret()
		code := strings.ReplaceAll(s.MiniCode(), "-", "")
		for pos := 0; pos+1 < len(code); pos++ {
			if code[pos] == code[pos+1] {
				continue
			}
			b := []byte(code)
			b[pos], b[pos+1] = b[pos+1], b[pos]
			total++
			_, got, err := ParseInvite(string(b))
			switch {
			case err != nil:
				if !errors.Is(err, ErrTypo) {
					t.Fatalf("transposition gave %v, want ErrTypo", err)
				}
				detected++
			case got == s:
				t.Fatal("a transposition decoded to the same secret")
			}
		}
	}
	if rate := float64(detected) / float64(total); rate < 0.9 {
		t.Errorf("only %.1f%% of adjacent transpositions detected", 100*rate)
	} else {
		t.Logf("%d/%d adjacent transpositions detected (%.2f%%)", detected, total, 100*rate)
	}
}

func TestMiniCodeLenient(t *testing.T) {
	s := testSecret(t)
	code := s.MiniCode()
	spaced := strings.ReplaceAll(code, "-", " ")
	// Replace each 0 with O and each 1 with I or L, alternately.
	var alt strings.Builder
	ones := 0
	for _, r := range code {
		switch r {
		case '0':
			alt.WriteRune('O')
		case '1':
			alt.WriteRune([]rune{'I', 'L', 'l', 'i'}[ones%4])
			ones++
		default:
			alt.WriteRune(r)
		}
	}
	tests := []struct{ name, in string }{
		{"canonical", code},
		{"lower case", strings.ToLower(code)},
		{"no dashes", strings.ReplaceAll(code, "-", "")},
		{"spaces", spaced},
		{"padding", "  \t" + code + "\n "},
		{"odd grouping", strings.ReplaceAll(code, "-", "")[:5] + " - " + strings.ReplaceAll(code, "-", "")[5:]},
		{"O/I/L", alt.String()},
		{"hash prefix", "#" + code},
		{"in link", "https://host/#" + code},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := ParseInvite(tt.in)
			if err != nil || got != s {
				t.Errorf("ParseInvite(%q) = %x, %v; want %x", tt.in, got, err, s)
			}
		})
	}
}

func TestMiniCodeKnown(t *testing.T) {
	// The all-zero secret: 26 zero symbols and a zero check.
	if got := (Secret{}).MiniCode(); got != "0000-0000-0000-0000-0000-0000-000" {
		t.Errorf("zero secret mini code = %q", got)
	}
	// Nonzero pad bits with a matching check character are a typo, not a secret.
	vals := make([]int, miniData)
	vals[miniData-1] = 1 // pad bit set
	code := ""
	for _, v := range append(vals, luhnCheck(vals)) {
		code += string(crockford[v])
	}
	if _, _, err := ParseInvite(code); !errors.Is(err, ErrTypo) {
		t.Errorf("pad bits set: err = %v, want ErrTypo", err)
	}
}

func TestParseInvite(t *testing.T) {
	s := testSecret(t)
	frag, code := s.Fragment(), s.MiniCode()
	tests := []struct {
		name, in, server string
		err              error
	}{
		{"https link", "https://cloak.example.org/#" + frag, "https://cloak.example.org", nil},
		{"link with port and path", "https://cloak.example.org:8443/room/#" + frag, "https://cloak.example.org:8443", nil},
		{"link with query", "https://h.example/?x=1#" + frag, "https://h.example", nil},
		{"http link", "http://127.0.0.1:8080/#" + frag, "http://127.0.0.1:8080", nil},
		{"upper-case scheme", "HTTPS://h.example/#" + frag, "https://h.example", nil},
		{"link with mini code", "https://h.example/#" + code, "https://h.example", nil},
		{"link surrounded by spaces", "  https://h.example/#" + frag + "\n", "https://h.example", nil},
		{"ipv6 link", "http://[::1]:8080/#" + frag, "http://[::1]:8080", nil},
		{"fragment", frag, "", nil},
		{"#fragment", "#" + frag, "", nil},
		{"mini code", code, "", nil},

		{"empty", "", "", ErrBadSecret},
		{"spaces only", "   ", "", ErrBadSecret},
		{"garbage", "hello world", "", ErrBadSecret},
		{"link without fragment", "https://h.example/", "", ErrBadSecret},
		{"link with empty fragment", "https://h.example/#", "", ErrBadSecret},
		{"link with bad fragment", "https://h.example/#abc", "", ErrBadSecret},
		{"link with bad scheme", "ftp://h.example/#" + frag, "", ErrBadSecret},
		{"link without host", "https:///#" + frag, "", ErrBadSecret},
		{"link with port only", "https://:8080/#" + frag, "", ErrBadSecret},
		{"bad url", "https://h.exa mple/%zz#" + frag, "", ErrBadSecret},
		{"fragment too short", frag[:21], "", ErrBadSecret},
		{"fragment too long", frag + "A", "", ErrBadSecret},
		{"fragment padded", frag + "==", "", ErrBadSecret},
		{"fragment non-canonical", frag[:21] + "B", "", ErrBadSecret},
		{"mini code too short", code[:len(code)-1], "", ErrBadSecret},
		{"mini code too long", code + "0", "", ErrBadSecret},
		{"mini code with U", "U" + code[1:], "", ErrBadSecret},
		{"mini code non-ascii", "é" + code[1:], "", ErrBadSecret},
		{"mini code typo", typo(code), "", ErrTypo},
		{"link with typo in mini code", "https://h.example/#" + typo(code), "", ErrTypo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, got, err := ParseInvite(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseInvite(%q) err = %v, want %v", tt.in, err, tt.err)
				}
				if (got != Secret{}) || server != "" {
					t.Errorf("ParseInvite(%q) returned a value with an error", tt.in)
				}
				return
			}
			if err != nil || got != s || server != tt.server {
				t.Fatalf("ParseInvite(%q) = %q, %x, %v; want %q, %x", tt.in, server, got, err, tt.server, s)
			}
		})
	}
}

func TestParseInviteErrorsDoNotLeak(t *testing.T) {
	s := testSecret(t)
	code := strings.ReplaceAll(s.MiniCode(), "-", "")
	for _, in := range []string{code[:20], s.Fragment()[:20] + "!!", "x" + code[1:], code + "XYZ"} {
		_, _, err := ParseInvite(in)
		if err == nil {
			t.Fatalf("ParseInvite(%q) accepted", in)
		}
		if strings.Contains(err.Error(), in[2:12]) {
			t.Errorf("error %q quotes the input", err)
		}
	}
}

// typo replaces the first symbol of code with the next alphabet symbol.
func typo(code string) string {
	i := strings.IndexByte(crockford, code[0])
	return string(crockford[(i+1)%len(crockford)]) + code[1:]
}
