package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// pairState holds the implementation fields of Pair.
type pairState struct {
	roomID     [16]byte
	self, peer string

	pairKey    [keyLen]byte // kept for the test vectors
	sendKey    [keyLen]byte // sigKey(self→peer)
	recvKey    [keyLen]byte // sigKey(peer→self)
	confirmKey [keyLen]byte

	send, recv cipher.AEAD

	sendMu  sync.Mutex
	sendCtr uint64 // last counter used; the next signal uses sendCtr+1

	recvMu  sync.Mutex
	recvMax uint64 // highest counter accepted so far
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("crypto: aes: " + err.Error()) // key is always 32 bytes here
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("crypto: gcm: " + err.Error())
	}
	return g
}

// pairInfo is "cloakroom/v1 pair" ‖ RoomID ‖ lp(idLow) ‖ lp(pubLow) ‖ lp(idHigh) ‖ lp(pubHigh).
func pairInfo(roomID [16]byte, idA string, pubA []byte, idB string, pubB []byte) []byte {
	if idB < idA {
		idA, pubA, idB, pubB = idB, pubB, idA, pubA
	}
	b := make([]byte, 0, len(labelPair)+len(roomID)+lpLen(idA)+lpLen(pubA)+lpLen(idB)+lpLen(pubB))
	b = append(b, labelPair...)
	b = append(b, roomID[:]...)
	b = appendLP(b, idA)
	b = appendLP(b, pubA)
	b = appendLP(b, idB)
	return appendLP(b, pubB)
}

// signalInfo is "cloakroom/v1 signal" ‖ lp(from) ‖ lp(to).
func signalInfo(from, to string) string {
	b := make([]byte, 0, len(labelSignal)+lpLen(from)+lpLen(to))
	b = append(b, labelSignal...)
	b = appendLP(b, from)
	return string(appendLP(b, to))
}

func newPair(k *RoomKeys, self string, id *Identity, peer string, peerPub []byte) (*Pair, error) {
	switch {
	case k == nil || id == nil || id.Priv == nil:
		return nil, errors.New("crypto: new pair: missing room keys or identity")
	case self == "" || peer == "":
		return nil, errors.New("crypto: new pair: empty member id")
	case self == peer:
		return nil, errors.New("crypto: new pair: peer is this member")
	case !fitsLP(self, peer):
		return nil, errors.New("crypto: new pair: member id too long")
	case id.Priv.Curve() != ecdh.P256():
		return nil, errors.New("crypto: new pair: identity is not a P-256 key")
	}
	selfPub := id.Priv.PublicKey().Bytes()
	if !bytes.Equal(selfPub, id.Pub) {
		return nil, errors.New("crypto: new pair: identity Pub does not match its private key")
	}
	pk, err := ecdh.P256().NewPublicKey(peerPub)
	if err != nil {
		return nil, fmt.Errorf("crypto: new pair: invalid peer public key: %w", err)
	}
	if bytes.Equal(pk.Bytes(), selfPub) {
		return nil, errors.New("crypto: new pair: peer announces this member's public key")
	}
	shared, err := id.Priv.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("crypto: new pair: ecdh: %w", err)
	}
	p := &Pair{}
	st := &p.pairState
	st.roomID, st.self, st.peer = k.RoomID, self, peer
	copy(st.pairKey[:], deriveKey(shared, k.PairSalt[:], string(pairInfo(k.RoomID, self, selfPub, peer, pk.Bytes())), keyLen))
	copy(st.sendKey[:], deriveKey(st.pairKey[:], nil, signalInfo(self, peer), keyLen))
	copy(st.recvKey[:], deriveKey(st.pairKey[:], nil, signalInfo(peer, self), keyLen))
	copy(st.confirmKey[:], deriveKey(st.pairKey[:], nil, labelConfirm, keyLen))
	st.send, st.recv = newGCM(st.sendKey[:]), newGCM(st.recvKey[:])
	return p, nil
}

// signalNonceAAD builds the nonce and AAD of the signal from→to with counter c.
func (st *pairState) signalNonceAAD(from, to string, c uint64) (nonce, aad []byte) {
	nonce = make([]byte, gcmNonceLen)
	binary.BigEndian.PutUint64(nonce[4:], c)
	aad = make([]byte, 0, len(labelSignal)+1+len(st.roomID)+lpLen(from)+lpLen(to)+8)
	aad = append(aad, labelSignal...)
	aad = append(aad, Version)
	aad = append(aad, st.roomID[:]...)
	aad = appendLP(aad, from)
	aad = appendLP(aad, to)
	aad = binary.BigEndian.AppendUint64(aad, c)
	return nonce, aad
}

func (p *Pair) sealSignal(plaintext []byte) ([]byte, error) {
	st := &p.pairState
	if st.send == nil {
		return nil, errors.New("crypto: seal signal: Pair not made by NewPair")
	}
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	if st.sendCtr == math.MaxUint64 {
		return nil, errors.New("crypto: seal signal: counter exhausted")
	}
	st.sendCtr++
	c := st.sendCtr
	nonce, aad := st.signalNonceAAD(st.self, st.peer, c)
	out := make([]byte, signalCtrLen, signalCtrLen+len(plaintext)+gcmTagLen)
	binary.BigEndian.PutUint64(out, c)
	return st.send.Seal(out, nonce, plaintext, aad), nil
}

func (p *Pair) openSignal(sealed []byte) ([]byte, error) {
	st := &p.pairState
	if st.recv == nil {
		return nil, errors.New("crypto: open signal: Pair not made by NewPair")
	}
	if len(sealed) < signalCtrLen+gcmTagLen {
		return nil, fmt.Errorf("%w: signal of %d bytes is too short", ErrOpen, len(sealed))
	}
	c := binary.BigEndian.Uint64(sealed)
	st.recvMu.Lock()
	defer st.recvMu.Unlock()
	// Authenticate first: a signal sealed for someone else (or altered) is
	// ErrOpen whatever its counter; only a genuine one can be a replay.
	nonce, aad := st.signalNonceAAD(st.peer, st.self, c)
	pt, err := st.recv.Open(nil, nonce, sealed[signalCtrLen:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	if c <= st.recvMax {
		return nil, ErrReplay
	}
	st.recvMax = c
	return pt, nil
}

// confirmInput is "cloakroom/v1 confirm" ‖ lp(offererFP) ‖ lp(answererFP) ‖
// u8(author is offerer) ‖ lp(author) ‖ lp(recipient), or nil when a field is
// too long.
func confirmInput(offererFP, answererFP string, fromOfferer bool, author, recipient string) []byte {
	if !fitsLP(offererFP, answererFP, author, recipient) {
		return nil
	}
	b := make([]byte, 0, len(labelConfirm)+lpLen(offererFP)+lpLen(answererFP)+1+lpLen(author)+lpLen(recipient))
	b = append(b, labelConfirm...)
	b = appendLP(b, offererFP)
	b = appendLP(b, answererFP)
	role := byte(0)
	if fromOfferer {
		role = 1
	}
	b = append(b, role)
	b = appendLP(b, author)
	return appendLP(b, recipient)
}

func (st *pairState) confirmTag(offererFP, answererFP string, fromOfferer bool, author, recipient string) []byte {
	in := confirmInput(offererFP, answererFP, fromOfferer, author, recipient)
	if in == nil {
		return nil
	}
	m := hmac.New(sha256.New, st.confirmKey[:])
	m.Write(in)
	return m.Sum(nil)
}

func (p *Pair) confirm(offererFP, answererFP string, fromOfferer bool) []byte {
	st := &p.pairState
	return st.confirmTag(offererFP, answererFP, fromOfferer, st.self, st.peer)
}

func (p *Pair) verifyConfirm(offererFP, answererFP string, fromOfferer bool, tag []byte) error {
	st := &p.pairState
	want := st.confirmTag(offererFP, answererFP, fromOfferer, st.peer, st.self)
	if st.send == nil || want == nil || !hmac.Equal(want, tag) {
		return fmt.Errorf("%w: key confirmation tag does not match (the data channel is not bound to this member)", ErrOpen)
	}
	return nil
}
