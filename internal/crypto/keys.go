package crypto

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

func deriveRoom(s Secret) *RoomKeys {
	k := new(RoomKeys)
	salt := []byte(roomSalt)
	copy(k.RoomID[:], deriveKey(s[:], salt, labelRoomID, len(k.RoomID)))
	copy(k.Verifier[:], deriveKey(s[:], salt, labelVerifier, len(k.Verifier)))
	copy(k.AnnounceKey[:], deriveKey(s[:], salt, labelAnnounce, len(k.AnnounceKey)))
	copy(k.ContentKey[:], deriveKey(s[:], salt, labelContent, len(k.ContentKey)))
	copy(k.PairSalt[:], deriveKey(s[:], salt, labelPairSalt, len(k.PairSalt)))
	return k
}

// announceInput is "cloakroom/v1 announce" ‖ RoomID ‖ lp(member) ‖ lp(pub),
// or nil when a field is too long.
func (k *RoomKeys) announceInput(member string, pub []byte) []byte {
	if !fitsLP(member, string(pub)) {
		return nil
	}
	b := make([]byte, 0, len(labelAnnounce)+len(k.RoomID)+lpLen(member)+lpLen(pub))
	b = append(b, labelAnnounce...)
	b = append(b, k.RoomID[:]...)
	b = appendLP(b, member)
	return appendLP(b, pub)
}

// announce returns nil when member or pub is over 65535 bytes.
func (k *RoomKeys) announce(member string, pub []byte) []byte {
	in := k.announceInput(member, pub)
	if in == nil {
		return nil
	}
	m := hmac.New(sha256.New, k.AnnounceKey[:])
	m.Write(in)
	return m.Sum(nil)
}

func (k *RoomKeys) verifyAnnounce(member string, pub, mac []byte) error {
	want := k.announce(member, pub)
	if want == nil || !hmac.Equal(want, mac) {
		return ErrBadAnnounce
	}
	return nil
}

func newIdentity() (*Identity, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("crypto: new identity: %w", err)
	}
	return &Identity{Priv: priv, Pub: priv.PublicKey().Bytes()}, nil
}
