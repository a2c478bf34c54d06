package transfer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// ErrBadChunk means a chunk's plaintext does not match the origin's
// commitment (docs/PROTOCOL.md "Chunk-hash commitment"): the holder that
// served it lied or broke, the reception itself is fine.
var ErrBadChunk = errors.New("chunk does not match the origin's hash")

// HashList holds a file's chunk hashes, piece by piece, each piece checked
// against the manifest's commitment before it is trusted. Safe for
// concurrent use.
type HashList struct {
	chunks uint32
	commit [][32]byte // SHA-256 of each piece, from the manifest

	mu     sync.Mutex
	hashes []byte // 32 bytes per chunk
	known  []bool // per piece
}

// NewHashList prepares the hash list committed to by man (nil when man has
// no commitment: a sender older than protocol v4).
func NewHashList(man *crypto.Manifest) (*HashList, error) {
	if man.Hashes == nil {
		return nil, nil
	}
	n := protocol.PieceCount(man.Chunks)
	if len(man.Hashes) != n {
		return nil, fmt.Errorf("manifest commits %d hash pieces for %d chunks: %w", len(man.Hashes), man.Chunks, ErrIntegrity)
	}
	h := &HashList{chunks: man.Chunks, commit: make([][32]byte, n), hashes: make([]byte, 32*int(man.Chunks)), known: make([]bool, n)}
	for i, s := range man.Hashes {
		b, err := protocol.DecodeB64(s)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("manifest piece hash %d: %w", i, ErrIntegrity)
		}
		copy(h.commit[i][:], b)
	}
	return h, nil
}

// Pieces returns the number of hash pieces.
func (h *HashList) Pieces() int { return len(h.commit) }

// SetPiece stores piece p if it matches the commitment.
func (h *HashList) SetPiece(p uint32, piece []byte) error {
	if int(p) >= len(h.commit) {
		return fmt.Errorf("hash piece %d of %d: %w", p, len(h.commit), ErrIntegrity)
	}
	lo, hi := protocol.PieceChunks(p, h.chunks)
	if len(piece) != 32*int(hi-lo) || sha256.Sum256(piece) != h.commit[p] {
		return fmt.Errorf("hash piece %d does not match the manifest: %w", p, ErrIntegrity)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	copy(h.hashes[32*lo:], piece)
	h.known[p] = true
	return nil
}

// Piece returns piece p, if known.
func (h *HashList) Piece(p uint32) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if int(p) >= len(h.known) || !h.known[p] {
		return nil, false
	}
	lo, hi := protocol.PieceChunks(p, h.chunks)
	return bytes.Clone(h.hashes[32*lo : 32*hi]), true
}

// Missing returns the pieces not known yet.
func (h *HashList) Missing() []uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []uint32
	for p, ok := range h.known {
		if !ok {
			out = append(out, uint32(p))
		}
	}
	return out
}

// Known reports whether chunk i's hash is known.
func (h *HashList) Known(i uint32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := i / protocol.HashesPerPiece
	return int(p) < len(h.known) && h.known[p]
}

// Check verifies chunk i's plaintext (unpadded) against its hash; a chunk
// whose piece is not known yet fails too (with ErrBadChunk unwrapped: the
// caller asks for the piece).
func (h *HashList) Check(i uint32, plain []byte) error {
	if i >= h.chunks {
		return fmt.Errorf("chunk %d of %d: %w", i, h.chunks, ErrBadChunk)
	}
	if !h.Known(i) {
		return fmt.Errorf("chunk %d: %w", i, errPieceUnknown)
	}
	sum := sha256.Sum256(plain)
	h.mu.Lock()
	ok := bytes.Equal(sum[:], h.hashes[32*i:32*i+32])
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("chunk %d: %w", i, ErrBadChunk)
	}
	return nil
}

// errPieceUnknown: a chunk from a non-origin holder arrived before its hash
// piece; it is dropped and asked for again.
var errPieceUnknown = errors.New("hash piece not known yet")

// HashFile reads r (size bytes) once and returns its SHA-256, its chunk
// hashes (32 bytes per chunk of chunkSize) and the manifest commitment. The
// whole-file hash runs on a goroutine of its own beside the chunk hashes
// (two SHA-256 passes over the same bytes: the sender's pre-pass takes
// half the time on two cores).
func HashFile(r io.Reader, size int64, chunkSize int) (sum [32]byte, chunkHashes []byte, commit []string, err error) {
	batches := make(chan []byte, hashBuffers)
	free := make(chan []byte, hashBuffers)
	wholeSum := make(chan [32]byte, 1)
	go func() { // ends when batches is closed, below
		whole := sha256.New()
		for b := range batches {
			whole.Write(b)
			free <- b
		}
		var s [32]byte
		copy(s[:], whole.Sum(nil))
		wholeSum <- s
	}()
	chunkHashes, err = hashChunks(r, size, chunkSize, batches, free)
	close(batches)
	sum = <-wholeSum
	if err != nil {
		return sum, nil, nil, err
	}
	return sum, chunkHashes, CommitPieces(chunkHashes, crypto.ChunkCount(size, chunkSize)), nil
}

// ChunkHashes reads r (size bytes) once and returns its chunk hashes (32
// bytes per chunk of chunkSize), without the whole-file hash.
func ChunkHashes(r io.Reader, size int64, chunkSize int) ([]byte, error) {
	return hashChunks(r, size, chunkSize, nil, nil)
}

// hashBatch is how many bytes hashChunks reads at once (whole chunks, at
// least one); hashBuffers of them are in use at once.
const (
	hashBatch   = 1 << 20
	hashBuffers = 4
)

// hashChunks reads r in batches of whole chunks and hashes each chunk.
// With out set, each batch read is sent on out for another reader of the
// same bytes, which must hand it back on free when done with it (hashChunks
// reads into a batch only once it came back, and fills free itself).
func hashChunks(r io.Reader, size int64, chunkSize int, out chan<- []byte, free chan []byte) ([]byte, error) {
	chunks := crypto.ChunkCount(size, chunkSize)
	hashes := make([]byte, 0, 32*int(chunks))
	per := max(1, hashBatch/chunkSize) // chunks per batch
	bufs := 1
	if out != nil {
		bufs = cap(free)
	}
	made := 0
	var spare []byte
	for i := uint32(0); i < chunks; {
		var buf []byte
		switch {
		case out == nil && spare != nil:
			buf = spare
		case made < bufs:
			buf = make([]byte, per*chunkSize)
			made++
		default:
			buf = <-free
		}
		n := min(uint32(per), chunks-i)
		want := min(int64(n)*int64(chunkSize), size-int64(i)*int64(chunkSize))
		buf = buf[:want]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("read chunks %d to %d: %w", i, i+n-1, err)
		}
		if out != nil {
			out <- buf // read only, by both, from here until it comes back on free
		} else {
			spare = buf[:cap(buf)]
		}
		for j := range int(n) { // a file of 0 bytes has one chunk, empty
			lo := min(j*chunkSize, len(buf))
			c := sha256.Sum256(buf[lo:min(lo+chunkSize, len(buf))])
			hashes = append(hashes, c[:]...)
		}
		i += n
	}
	return hashes, nil
}

// CommitPieces returns the manifest's commitment to chunkHashes.
func CommitPieces(chunkHashes []byte, chunks uint32) []string {
	out := make([]string, protocol.PieceCount(chunks))
	for p := range out {
		lo, hi := protocol.PieceChunks(uint32(p), chunks)
		s := sha256.Sum256(chunkHashes[32*lo : 32*hi])
		out[p] = protocol.EncodeB64(s[:])
	}
	return out
}

// Fill stores every piece of chunkHashes (computed by the origin, or from a
// complete verified file) and checks them against the commitment.
func (h *HashList) Fill(chunkHashes []byte) error {
	for p := range h.commit {
		lo, hi := protocol.PieceChunks(uint32(p), h.chunks)
		if err := h.SetPiece(uint32(p), chunkHashes[32*lo:32*hi]); err != nil {
			return err
		}
	}
	return nil
}
