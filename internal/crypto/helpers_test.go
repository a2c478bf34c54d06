package crypto

import (
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// Fixed test inputs (also the inputs of testdata/vectors.json).
const (
	testSecretHex = "8e5a4c1f0b7d3e9a62f4c8d1a7b03e55"
	memberA       = "3f1c9a2e-7b4d-4e8a-9c61-0d2f5e8b7a14"
	memberB       = "b82e6d10-4c3a-4f9e-8b57-91a0c3d2e6f8"
	memberC       = "c0ffee00-1234-4abc-8def-0123456789ab"
	testFileID    = "5d0f3c8e-2a71-4b9d-8e43-a6c2f1907b3d"
	otherFileID   = "5d0f3c8e-2a71-4b9d-8e43-a6c2f1907b3e"
)

// labelBytes returns n bytes derived from a label (fixed test values).
func labelBytes(label string, n int) []byte {
	var out []byte
	for i := byte(0); len(out) < n; i++ {
		h := sha256.Sum256(append([]byte(label), i))
		out = append(out, h[:]...)
	}
	return out[:n]
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func testSecret(t testing.TB) Secret {
	var s Secret
	copy(s[:], mustHex(t, testSecretHex))
	return s
}

func testRoom(t testing.TB) *RoomKeys { return DeriveRoom(testSecret(t)) }

// fixedIdentity builds a P-256 identity from a label-derived scalar.
func fixedIdentity(t testing.TB, label string) *Identity {
	t.Helper()
	priv, err := ecdh.P256().NewPrivateKey(labelBytes(label, 32))
	if err != nil {
		t.Fatalf("private key %s: %v", label, err)
	}
	return &Identity{Priv: priv, Pub: priv.PublicKey().Bytes()}
}

func identityA(t testing.TB) *Identity { return fixedIdentity(t, "cloakroom/v1 test vector member A") }
func identityB(t testing.TB) *Identity { return fixedIdentity(t, "cloakroom/v1 test vector member B") }

// uuidBytes converts a UUID string to its 16 bytes.
func uuidBytes(t testing.TB, u string) [16]byte {
	t.Helper()
	var b [16]byte
	raw, err := hex.DecodeString(strings.ReplaceAll(u, "-", ""))
	if err != nil || len(raw) != 16 {
		t.Fatalf("bad uuid %q", u)
	}
	copy(b[:], raw)
	return b
}

// pairs returns the pair as seen by A (A→B) and by B (B→A).
func pairs(t testing.TB, k *RoomKeys) (ab, ba *Pair) {
	t.Helper()
	a, b := identityA(t), identityB(t)
	ab, err := NewPair(k, memberA, a, memberB, b.Pub)
	if err != nil {
		t.Fatal(err)
	}
	ba, err = NewPair(k, memberB, b, memberA, a.Pub)
	if err != nil {
		t.Fatal(err)
	}
	return ab, ba
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}
