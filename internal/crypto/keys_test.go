package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestDeriveRoom(t *testing.T) {
	k := testRoom(t)
	if *k != *DeriveRoom(testSecret(t)) {
		t.Fatal("DeriveRoom is not deterministic")
	}
	keys := map[string][]byte{
		"room id": k.RoomID[:], "verifier": k.Verifier[:], "announce": k.AnnounceKey[:],
		"content": k.ContentKey[:], "pair salt": k.PairSalt[:],
	}
	for n1, a := range keys {
		if bytes.Equal(a, make([]byte, len(a))) {
			t.Errorf("%s is zero", n1)
		}
		for n2, b := range keys {
			if n1 != n2 && bytes.Contains(b, a[:16]) {
				t.Errorf("%s and %s share bytes", n1, n2)
			}
		}
	}
	other := testSecret(t)
	other[15] ^= 1
	if k2 := DeriveRoom(other); k2.RoomID == k.RoomID || k2.Verifier == k.Verifier || k2.ContentKey == k.ContentKey {
		t.Error("different secrets give the same keys")
	}
	if got, want := k.RoomIDString(), base64.RawURLEncoding.EncodeToString(k.RoomID[:]); got != want || len(got) != 22 {
		t.Errorf("RoomIDString() = %q, want %q", got, want)
	}
}

func TestAnnounce(t *testing.T) {
	k := testRoom(t)
	a, b := identityA(t), identityB(t)
	mac := k.Announce(memberA, a.Pub)
	if len(mac) != 32 {
		t.Fatalf("MAC of %d bytes", len(mac))
	}
	other := testSecret(t)
	other[0] ^= 1
	tests := []struct {
		name   string
		k      *RoomKeys
		member string
		pub    []byte
		mac    []byte
		ok     bool
	}{
		{"valid", k, memberA, a.Pub, mac, true},
		{"swapped pub", k, memberA, b.Pub, mac, false},
		{"swapped member", k, memberB, a.Pub, mac, false},
		{"flipped mac", k, memberA, a.Pub, flip(mac, 31), false},
		{"short mac", k, memberA, a.Pub, mac[:16], false},
		{"empty mac", k, memberA, a.Pub, nil, false},
		{"other room", DeriveRoom(other), memberA, a.Pub, mac, false},
		{"long member", k, strings.Repeat("x", 70000), a.Pub, mac, false},
		// Length prefixes keep the fields apart.
		{"shifted boundary", k, memberA + string(a.Pub[:1]), a.Pub[1:], mac, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.k.VerifyAnnounce(tt.member, tt.pub, tt.mac)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadAnnounce)) {
				t.Errorf("VerifyAnnounce = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if k.Announce(strings.Repeat("x", 70000), a.Pub) != nil {
		t.Error("Announce with an oversize member should be nil")
	}
}

func TestNewIdentity(t *testing.T) {
	a, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewIdentity()
	if len(a.Pub) != 65 || a.Pub[0] != 4 {
		t.Errorf("Pub = %x, want 65-byte uncompressed point", a.Pub)
	}
	if !bytes.Equal(a.Pub, a.Priv.PublicKey().Bytes()) || bytes.Equal(a.Pub, b.Pub) {
		t.Error("bad identity")
	}
}
