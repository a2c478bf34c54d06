package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVerifier(t *testing.T) {
	v := []byte("0123456789abcdef0123456789abcdef")
	stored := HashVerifier(v)
	if stored != HashVerifier(v) {
		t.Fatal("HashVerifier is not deterministic")
	}
	tests := []struct {
		name string
		v    []byte
		ok   bool
	}{
		{"same", v, true},
		{"copy", append([]byte(nil), v...), true},
		{"flipped", append([]byte{v[0] ^ 1}, v[1:]...), false},
		{"short", v[:31], false},
		{"long", append(append([]byte(nil), v...), 0), false},
		{"empty", nil, false},
		{"the hash itself", stored[:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckVerifier(stored, tt.v); got != tt.ok {
				t.Errorf("CheckVerifier = %v, want %v", got, tt.ok)
			}
		})
	}
}

var (
	turnSecret = []byte("north wind")
	turnNow    = time.Unix(1_700_000_000, 0)
)

func TestMintTURN(t *testing.T) {
	user, pass := MintTURN(turnSecret, "3f1c9a2e-7b4d-4e8a-9c61-0d2f5e8b7a14", time.Hour, turnNow)
	if user != "1700003600:3f1c9a2e-7b4d-4e8a-9c61-0d2f5e8b7a14" {
		t.Errorf("username %q", user)
	}
	m := hmac.New(sha1.New, turnSecret)
	m.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); pass != want || pass != TURNPassword(turnSecret, user) {
		t.Errorf("password %q, want %q", pass, want)
	}
	// Known answer (computed with coturn's formula:
	// echo -n "$user" | openssl dgst -binary -sha1 -hmac "north wind" | base64).
	if got := TURNPassword(turnSecret, "1700003600:alice"); got != "6GJqgZJb8jO3w69jfrRqnfTbTKU=" {
		t.Errorf("TURNPassword known answer = %q", got)
	}
}

func TestVerifyTURN(t *testing.T) {
	user, pass := MintTURN(turnSecret, "alice", 10*time.Minute, turnNow)
	exp := turnNow.Add(10 * time.Minute)
	forge := func(u string) (string, string) { return u, TURNPassword(turnSecret, u) }
	tests := []struct {
		name       string
		secret     []byte
		user, pass string
		now        time.Time
		err        error
	}{
		{"valid", turnSecret, user, pass, turnNow, nil},
		{"valid a second before expiry", turnSecret, user, pass, exp.Add(-time.Second), nil},
		{"expired at expiry", turnSecret, user, pass, exp, ErrTURNExpired},
		{"expired later", turnSecret, user, pass, exp.Add(time.Hour), ErrTURNExpired},
		{"wrong secret", []byte("south wind"), user, pass, turnNow, ErrTURNBad},
		{"tampered password", turnSecret, user, "A" + pass[1:], turnNow, ErrTURNBad},
		{"empty password", turnSecret, user, "", turnNow, ErrTURNBad},
		{"expiry pushed", turnSecret, strings.Replace(user, "1700000600", "1800000600", 1), pass, turnNow, ErrTURNBad},
		{"user changed", turnSecret, strings.Replace(user, "alice", "mallory", 1), pass, turnNow, ErrTURNBad},
		{"expired and tampered", turnSecret, user, "x", exp.Add(time.Hour), ErrTURNBad},
		{"no user (coturn form)", turnSecret, "1700000600", TURNPassword(turnSecret, "1700000600"), turnNow, nil},
		{"user with colon", turnSecret, "1700000600:a:b", TURNPassword(turnSecret, "1700000600:a:b"), turnNow, nil},
	}
	for _, u := range []string{"", ":alice", "alice:1700000600", "-1700000600:a", "+1700000600:a", " 1700000600:a",
		"0x65:a", "1.5:a", "0:a", "99999999999999999999:a", "9223372036854775808:a", "17000006OO:a",
		"1700000600" + strings.Repeat("x", MaxTURNUsername)} {
		u, p := forge(u)
		tests = append(tests, struct {
			name       string
			secret     []byte
			user, pass string
			now        time.Time
			err        error
		}{"malformed " + strconv.Quote(u[:min(len(u), 20)]), turnSecret, u, p, turnNow, ErrTURNBad})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyTURN(tt.secret, tt.user, tt.pass, tt.now)
			if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("VerifyTURN(%q) = %v, want %v", tt.user, err, tt.err)
			}
		})
	}
}

func TestParseTURNUsername(t *testing.T) {
	tests := []struct {
		in   string
		exp  int64
		user string
		ok   bool
	}{
		{"1700000600:alice", 1700000600, "alice", true},
		{"1700000600", 1700000600, "", true},
		{"1700000600:", 1700000600, "", true},
		{"9223372036854775807:x", 9223372036854775807, "x", true},
		{"1:a:b", 1, "a:b", true},
		{"01:a", 1, "a", true},
		{"", 0, "", false},
		{":", 0, "", false},
		{"0:x", 0, "", false},
		{"9223372036854775808:x", 0, "", false},
		{"12345678901234567890:x", 0, "", false},
		{"١٢٣:x", 0, "", false}, // non-ASCII digits
	}
	for _, tt := range tests {
		exp, user, err := parseTURNUsername(tt.in)
		if tt.ok != (err == nil) || exp != tt.exp || user != tt.user {
			t.Errorf("parseTURNUsername(%q) = %d, %q, %v", tt.in, exp, user, err)
		}
	}
}

func FuzzParseTURNUsername(f *testing.F) {
	for _, s := range []string{"1700000600:alice", "1700000600", ":", "", "-1:a", "99999999999999999999:a", "1:a:b", "١:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, username string) {
		exp, user, err := parseTURNUsername(username)
		if err != nil {
			if !errors.Is(err, ErrTURNBad) || exp != 0 || user != "" {
				t.Fatalf("parse(%q) = %d, %q, %v", username, exp, user, err)
			}
			if VerifyTURN(turnSecret, username, TURNPassword(turnSecret, username), turnNow) == nil {
				t.Fatal("VerifyTURN accepted an unparsable username")
			}
			return
		}
		// The input is "<digits>" or "<digits>:<user>" and the digits are exp
		// (leading zeros allowed, as coturn's atol does; the HMAC covers the
		// exact username anyway).
		ts, rest, hasUser := strings.Cut(username, ":")
		n, perr := strconv.ParseInt(ts, 10, 64)
		if exp <= 0 || perr != nil || n != exp || strings.TrimLeft(ts, "0123456789") != "" || rest != user || (!hasUser && user != "") {
			t.Fatalf("parse(%q) = %d, %q does not match the input", username, exp, user)
		}
		// Minted credentials for this user round-trip.
		u, p := MintTURN(turnSecret, user, time.Minute, turnNow)
		if len(u) <= MaxTURNUsername {
			if err := VerifyTURN(turnSecret, u, p, turnNow); err != nil {
				t.Fatalf("VerifyTURN(MintTURN(%q)) = %v", user, err)
			}
		}
	})
}
