package transfer

import (
	"fmt"
	"io"

	"github.com/google/uuid"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// SealChunks reads, pads and seals every chunk of the file behind r (name
// is for errors) into a ChunkUp frame, reusing one buffer, and hands it to
// send: a peer session's data channel or the relay upload take the very
// same frames. Chunks skip reports held everywhere are left out.
func SealChunks(r io.ReaderAt, name string, man *crypto.Manifest, ciph *crypto.ChunkCipher, skip func(uint32) bool, send func(uint32, []byte) error) error {
	fid := uuid.MustParse(man.File)
	plain := make([]byte, man.ChunkSize)
	frame := make([]byte, 0, protocol.ChunkUpHeader+man.ChunkSize+16)
	for i := uint32(0); i < man.Chunks; i++ {
		if skip != nil && skip(i) {
			continue
		}
		var err error
		if frame, err = SealChunk(r, name, man, fid, ciph, i, plain, frame[:0]); err != nil {
			return err
		}
		if err := send(i, frame); err != nil {
			return err
		}
	}
	return nil
}

// SealChunk reads chunk i of the file behind r (fid is man.File, parsed)
// into plain (ChunkSize bytes), pads it, and appends its sealed ChunkUp
// frame to frame. Sealing
// is deterministic: any holder of the plaintext and the manifest makes the
// very frame the origin made.
func SealChunk(r io.ReaderAt, name string, man *crypto.Manifest, fid uuid.UUID, ciph *crypto.ChunkCipher, i uint32, plain, frame []byte) ([]byte, error) {
	off := int64(i) * int64(man.ChunkSize)
	want := int(chunkLen(man, i))
	n, err := r.ReadAt(plain[:want], off)
	if n < want {
		return frame, fmt.Errorf("read %s (did it change while sending?): %w", name, err)
	}
	// Every chunk, the last included, is sealed at full size (zero
	// padding), so a relay learns the chunk count and not the size.
	clear(plain[n:man.ChunkSize])
	ch := protocol.Chunk{File: fid, Index: i, Count: man.Chunks, Final: i == man.Chunks-1}
	return ciph.Seal(ch.AppendUp(frame), i, plain[:man.ChunkSize]), nil
}

// ChunkLen is the plaintext length of chunk i of man (the last one is short).
func ChunkLen(man *crypto.Manifest, i uint32) int64 { return chunkLen(man, i) }
