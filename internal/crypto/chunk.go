package crypto

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// chunkSuffixLen is u32(index) ‖ u8(final) ‖ u32(count) ‖ u64(size).
const chunkSuffixLen = 4 + 1 + 4 + 8

// chunkState holds the implementation fields of ChunkCipher.
type chunkState struct {
	aead   cipher.AEAD
	count  uint32
	size   uint64
	prefix []byte // "cloakroom/v1 chunk" ‖ u8(Version) ‖ RoomID ‖ lp(sender) ‖ file
	// scratch holds *chunkScratch: per-call nonce and AAD buffers, so that
	// Seal and Open do not allocate and stay safe for concurrent use.
	scratch sync.Pool
}

type chunkScratch struct {
	nonce [gcmNonceLen]byte
	aad   []byte // prefix ‖ suffix
}

// chunkKey derives the chunk key from a file key.
func chunkKey(fileKey []byte) []byte { return deriveKey(fileKey, nil, labelChunk, keyLen) }

func newChunkCipher(key []byte, roomID [16]byte, sender string, file [16]byte, count uint32, size int64) (*ChunkCipher, error) {
	switch {
	case len(key) != fileKeyLen:
		return nil, fmt.Errorf("crypto: chunk cipher: file key of %d bytes, want %d", len(key), fileKeyLen)
	case count == 0:
		return nil, errors.New("crypto: chunk cipher: zero chunk count")
	case size < 0:
		return nil, fmt.Errorf("crypto: chunk cipher: negative size %d", size)
	case !fitsLP(sender):
		return nil, errors.New("crypto: chunk cipher: sender id too long")
	}
	c := &ChunkCipher{}
	st := &c.chunkState
	ck := chunkKey(key)
	st.aead = newGCM(ck)
	clear(ck)
	st.count, st.size = count, uint64(size)
	p := make([]byte, 0, len(labelChunk)+1+len(roomID)+lpLen(sender)+len(file))
	p = append(p, labelChunk...)
	p = append(p, Version)
	p = append(p, roomID[:]...)
	p = appendLP(p, sender)
	st.prefix = append(p, file[:]...)
	st.scratch.New = func() any {
		aad := make([]byte, len(st.prefix)+chunkSuffixLen)
		copy(aad, st.prefix)
		return &chunkScratch{aad: aad}
	}
	return c, nil
}

// get returns scratch buffers filled with the nonce and AAD of chunk index.
func (st *chunkState) get(index uint32, final bool) *chunkScratch {
	s := st.scratch.Get().(*chunkScratch)
	f := byte(0)
	if final {
		f = 1
	}
	binary.BigEndian.PutUint64(s.nonce[:8], uint64(index))
	s.nonce[8], s.nonce[9], s.nonce[10], s.nonce[11] = 0, 0, 0, f
	t := s.aad[len(st.prefix):]
	binary.BigEndian.PutUint32(t[0:4], index)
	t[4] = f
	binary.BigEndian.PutUint32(t[5:9], st.count)
	binary.BigEndian.PutUint64(t[9:17], st.size)
	return s
}

func (c *ChunkCipher) seal(dst []byte, index uint32, plaintext []byte) []byte {
	st := &c.chunkState
	if st.aead == nil {
		panic("crypto: ChunkCipher not made by NewChunkCipher")
	}
	if index >= st.count {
		panic(fmt.Sprintf("crypto: seal chunk %d of a file of %d chunks", index, st.count))
	}
	s := st.get(index, index == st.count-1)
	dst = st.aead.Seal(dst, s.nonce[:], plaintext, s.aad)
	st.scratch.Put(s)
	return dst
}

func (c *ChunkCipher) open(dst []byte, index uint32, final bool, sealed []byte) ([]byte, error) {
	st := &c.chunkState
	switch {
	case st.aead == nil:
		return nil, errors.New("crypto: ChunkCipher not made by NewChunkCipher")
	case index >= st.count:
		return nil, fmt.Errorf("%w: chunk %d of a file of %d chunks", ErrOpen, index, st.count)
	case final != (index == st.count-1):
		return nil, fmt.Errorf("%w: final flag %v on chunk %d of %d", ErrOpen, final, index, st.count)
	case len(sealed) < gcmTagLen:
		return nil, fmt.Errorf("%w: sealed chunk of %d bytes is too short", ErrOpen, len(sealed))
	}
	s := st.get(index, final)
	out, err := st.aead.Open(dst, s.nonce[:], sealed, s.aad)
	st.scratch.Put(s)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
