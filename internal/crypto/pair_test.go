package crypto

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestPairSymmetric(t *testing.T) {
	k := testRoom(t)
	ab, ba := pairs(t, k)
	if ab.pairKey != ba.pairKey {
		t.Fatal("pair keys differ")
	}
	if ab.sendKey != ba.recvKey || ab.recvKey != ba.sendKey {
		t.Fatal("directional keys do not match")
	}
	if ab.sendKey == ab.recvKey || ab.sendKey == ab.confirmKey || ab.pairKey == ab.sendKey {
		t.Fatal("directional keys are not distinct")
	}
	// A third member gets a different pair key with A.
	c, _ := NewIdentity()
	ac, err := NewPair(k, memberA, identityA(t), memberC, c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if ac.pairKey == ab.pairKey {
		t.Fatal("pair keys of different peers are equal")
	}
}

func TestNewPairErrors(t *testing.T) {
	k := testRoom(t)
	a, b := identityA(t), identityB(t)
	p384, _ := ecdh.P384().GenerateKey(nil)
	compressed := append([]byte{2 + b.Pub[64]&1}, b.Pub[1:33]...)
	offCurve := append([]byte(nil), b.Pub...)
	offCurve[64] ^= 1
	tests := []struct {
		name       string
		k          *RoomKeys
		self, peer string
		id         *Identity
		pub        []byte
	}{
		{"nil keys", nil, memberA, memberB, a, b.Pub},
		{"nil identity", k, memberA, memberB, nil, b.Pub},
		{"same member", k, memberA, memberA, a, b.Pub},
		{"empty self", k, "", memberB, a, b.Pub},
		{"empty peer", k, memberA, "", a, b.Pub},
		{"own pub", k, memberA, memberB, a, a.Pub},
		{"empty pub", k, memberA, memberB, a, nil},
		{"short pub", k, memberA, memberB, a, b.Pub[:64]},
		{"compressed pub", k, memberA, memberB, a, compressed},
		{"off-curve pub", k, memberA, memberB, a, offCurve},
		{"identity point", k, memberA, memberB, a, []byte{0}},
		{"mismatched identity", k, memberA, memberB, &Identity{Priv: a.Priv, Pub: b.Pub}, b.Pub},
		{"P-384 identity", k, memberA, memberB, &Identity{Priv: p384, Pub: p384.PublicKey().Bytes()}, b.Pub},
		{"long id", k, strings.Repeat("a", 70000), memberB, a, b.Pub},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := NewPair(tt.k, tt.self, tt.id, tt.peer, tt.pub); err == nil || p != nil {
				t.Errorf("NewPair = %v, %v; want error", p, err)
			}
		})
	}
}

func TestSignalRoundTrip(t *testing.T) {
	ab, ba := pairs(t, testRoom(t))
	for i, msg := range []string{"", "offer v=0...", strings.Repeat("candidate ", 1000)} {
		for _, dir := range []struct{ s, o *Pair }{{ab, ba}, {ba, ab}} {
			sealed, err := dir.s.SealSignal([]byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			if c := binary.BigEndian.Uint64(sealed); c != uint64(i+1) {
				t.Fatalf("counter %d, want %d", c, i+1)
			}
			if len(sealed) != 8+len(msg)+16 {
				t.Fatalf("sealed %d bytes for %d", len(sealed), len(msg))
			}
			got, err := dir.o.OpenSignal(sealed)
			if err != nil || string(got) != msg {
				t.Fatalf("OpenSignal = %q, %v", got, err)
			}
		}
	}
}

func TestSignalReplayAndTamper(t *testing.T) {
	k := testRoom(t)
	ab, ba := pairs(t, k)
	s1, _ := ab.SealSignal([]byte("one"))
	s2, _ := ab.SealSignal([]byte("two"))
	s3, _ := ab.SealSignal([]byte("three"))
	s5 := func() []byte { ab.SealSignal(nil); s, _ := ab.SealSignal([]byte("five")); return s }()

	if _, err := ba.OpenSignal(s2); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sealed []byte
		err    error
	}{
		{"replay", s2, ErrReplay},
		{"reorder (older counter)", s1, ErrReplay},
		{"counter zero (altered: it fails to authenticate)", append(make([]byte, 8), s3[8:]...), ErrOpen},
		{"counter changed", func() []byte { c := append([]byte(nil), s3...); c[7] = 9; return c }(), ErrOpen},
		{"flipped ciphertext", flip(s3, 9), ErrOpen},
		{"flipped tag", flip(s3, len(s3)-1), ErrOpen},
		{"truncated", s3[:len(s3)-1], ErrOpen},
		{"too short", s3[:23], ErrOpen},
		{"empty", nil, ErrOpen},
		{"gap is fine", s5, nil},
		{"after the gap, older fails", s3, ErrReplay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ba.OpenSignal(tt.sealed)
			if tt.err == nil {
				if err != nil || string(got) != "five" {
					t.Fatalf("OpenSignal = %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tt.err) || got != nil {
				t.Fatalf("OpenSignal = %q, %v; want %v", got, err, tt.err)
			}
		})
	}
}

// A failed open must not advance the counter.
func TestSignalTamperDoesNotAdvance(t *testing.T) {
	ab, ba := pairs(t, testRoom(t))
	s1, _ := ab.SealSignal([]byte("one"))
	if _, err := ba.OpenSignal(flip(s1, 10)); !errors.Is(err, ErrOpen) {
		t.Fatal(err)
	}
	bogus := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, s1[8:]...)
	if _, err := ba.OpenSignal(bogus); !errors.Is(err, ErrOpen) {
		t.Fatal(err)
	}
	if got, err := ba.OpenSignal(s1); err != nil || string(got) != "one" {
		t.Fatalf("genuine signal after tampering: %q, %v", got, err)
	}
}

func mustSeal(t *testing.T, p *Pair, msg string) []byte {
	t.Helper()
	s, err := p.SealSignal([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A server that swaps B's announced key for its own (M) gets pairs that
// cannot talk to either side.
func TestSignalKeySwap(t *testing.T) {
	k := testRoom(t)
	a, b := identityA(t), identityB(t)
	m, _ := NewIdentity()
	// A believes B's key is M's.
	aToM, err := NewPair(k, memberA, a, memberB, m.Pub)
	if err != nil {
		t.Fatal(err)
	}
	// B believes A's key is M's.
	bToM, _ := NewPair(k, memberB, b, memberA, m.Pub)
	// M knows its own private key and both real public keys, but not the
	// room's PairSalt: its best guess is a room with a wrong salt.
	wrong := *k
	wrong.PairSalt[0] ^= 1
	mAsBWrongSalt, _ := NewPair(&wrong, memberB, m, memberA, a.Pub)

	sealed := mustSeal(t, aToM, "offer")
	// B, with the real A key, cannot open what A sealed to "B" (really M).
	ba, _ := NewPair(k, memberB, b, memberA, a.Pub)
	if _, err := ba.OpenSignal(sealed); !errors.Is(err, ErrOpen) {
		t.Errorf("B opened a signal sealed under a swapped key: %v", err)
	}
	if _, err := bToM.OpenSignal(sealed); !errors.Is(err, ErrOpen) {
		t.Errorf("B (also swapped) opened it: %v", err)
	}
	if _, err := mAsBWrongSalt.OpenSignal(sealed); !errors.Is(err, ErrOpen) {
		t.Errorf("M without the pair salt opened it: %v", err)
	}
	ab, _ := NewPair(k, memberA, a, memberB, b.Pub)
	if ab.pairKey == aToM.pairKey || ba.pairKey == bToM.pairKey {
		t.Error("a swapped key gives the same pair key")
	}
}

func TestSignalReflected(t *testing.T) {
	_, ba := pairs(t, testRoom(t))
	if _, err := ba.OpenSignal(mustSeal(t, ba, "mine")); !errors.Is(err, ErrOpen) {
		t.Errorf("opened its own signal reflected back: %v", err)
	}
}

func TestSignalWrongRoom(t *testing.T) {
	ab, _ := pairs(t, testRoom(t))
	other := testSecret(t)
	other[3] ^= 0x80
	_, ba := pairs(t, DeriveRoom(other))
	if _, err := ba.OpenSignal(mustSeal(t, ab, "x")); !errors.Is(err, ErrOpen) {
		t.Errorf("opened a signal of another room: %v", err)
	}
}

func TestSignalConcurrent(t *testing.T) {
	ab, ba := pairs(t, testRoom(t))
	const n = 200
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		sealed = make(map[uint64][]byte)
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := ab.SealSignal([]byte(fmt.Sprint(i)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sealed[binary.BigEndian.Uint64(s)] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(sealed) != n {
		t.Fatalf("%d distinct counters for %d signals", len(sealed), n)
	}
	for c := uint64(1); c <= n; c++ {
		if _, err := ba.OpenSignal(sealed[c]); err != nil {
			t.Fatalf("counter %d: %v", c, err)
		}
	}
}

func TestConfirm(t *testing.T) {
	ab, ba := pairs(t, testRoom(t))
	const fpA, fpB = "sha-256 AA:BB", "sha-256 CC:DD"
	// A offers, B answers.
	tagA := ab.Confirm(fpA, fpB, true)
	tagB := ba.Confirm(fpA, fpB, false)
	if len(tagA) != 32 || bytes.Equal(tagA, tagB) {
		t.Fatal("bad tags")
	}
	if err := ba.VerifyConfirm(fpA, fpB, true, tagA); err != nil {
		t.Errorf("B rejects A's tag: %v", err)
	}
	if err := ab.VerifyConfirm(fpA, fpB, false, tagB); err != nil {
		t.Errorf("A rejects B's tag: %v", err)
	}
	_, baOther := pairs(t, DeriveRoom(Secret{1}))
	tests := []struct {
		name    string
		p       *Pair
		o, a    string
		offerer bool
		tag     []byte
	}{
		{"reflected tag", ab, fpA, fpB, true, tagA},
		{"reflected tag, role claimed", ab, fpA, fpB, false, tagA},
		{"wrong role", ba, fpA, fpB, false, tagA},
		{"swapped fingerprints", ba, fpB, fpA, true, tagA},
		{"fingerprint of a MITM", ba, "sha-256 EE:FF", fpB, true, tagA},
		{"flipped", ba, fpA, fpB, true, flip(tagA, 0)},
		{"short", ba, fpA, fpB, true, tagA[:31]},
		{"nil", ba, fpA, fpB, true, nil},
		{"other room", baOther, fpA, fpB, true, tagA},
		{"shifted boundary", ba, fpA + "S", fpB[1:], true, tagA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.VerifyConfirm(tt.o, tt.a, tt.offerer, tt.tag); !errors.Is(err, ErrOpen) {
				t.Errorf("VerifyConfirm = %v, want ErrOpen", err)
			}
		})
	}
	if ab.Confirm(strings.Repeat("x", 70000), fpB, true) != nil {
		t.Error("oversize fingerprint should give a nil tag")
	}
}

func TestZeroPair(t *testing.T) {
	var p Pair
	if _, err := p.SealSignal(nil); err == nil {
		t.Error("zero Pair sealed")
	}
	if _, err := p.OpenSignal(make([]byte, 40)); err == nil {
		t.Error("zero Pair opened")
	}
	if err := p.VerifyConfirm("a", "b", true, make([]byte, 32)); err == nil {
		t.Error("zero Pair verified")
	}
}
