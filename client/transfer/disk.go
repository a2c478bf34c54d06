package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"cloakroom/internal/crypto"
)

// diskSink is the ChunkSink of a reception to disk: a partial file named by
// the content it will hold, a chunk bitmap beside it (resume.go), a running
// SHA-256 over the chunks that came in order, and the finished file placed
// under the sender's (sanitised) name in dir.
type diskSink struct {
	dir    string
	man    *crypto.Manifest
	f      *os.File
	part   string
	have   *haveMap
	got    uint32
	bytes  int64
	hash   hash.Hash
	hashed uint32 // chunks hashed so far, in order
	// reserved: the file's blocks up to here are allocated. Space is
	// reserved as chunks arrive, reserveStep ahead, never for the whole
	// announced size at once: a member cannot fill the disk with manifests.
	reserved int64
}

// reserveStep is how far ahead of the chunks written blocks are allocated.
const reserveStep = 64 << 20

// reserve allocates the file's blocks through end and reserveStep beyond,
// up to the file's size.
func (s *diskSink) reserve(end int64) {
	if end <= s.reserved {
		return
	}
	to := min(s.man.Size, end+reserveStep)
	preallocate(s.f, s.reserved, to-s.reserved)
	s.reserved = to
}

var _ ChunkSink = (*diskSink)(nil)

// openDiskSink opens (or resumes) the partial file for man in dir.
func openDiskSink(dir string, man *crypto.Manifest) (*diskSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("receive dir: %w", err)
	}
	f, part, hm, err := openPartial(dir, man)
	if err != nil {
		return nil, err
	}
	s := &diskSink{dir: dir, man: man, f: f, part: part, have: hm, hash: sha256.New()}
	s.count()
	if err := checkSpace(dir, man.Size-s.bytes); err != nil {
		s.Close()
		return nil, fmt.Errorf("%q (%d bytes): %w", SafeName(man.Name), man.Size, err)
	}
	return s, nil
}

// count recomputes got and bytes from the bitmap (a resumed partial file).
func (s *diskSink) count() {
	s.got, s.bytes = 0, 0
	for i := uint32(0); i < s.man.Chunks; i++ {
		if s.have.has(i) {
			s.got++
			s.bytes += chunkLen(s.man, i)
		}
	}
}

func (s *diskSink) Has(i uint32) bool     { return s.have.has(i) }
func (s *diskSink) Held() (uint32, int64) { return s.got, s.bytes }
func (s *diskSink) Ranges() [][2]uint32   { return s.have.ranges(s.man.Chunks) }
func (s *diskSink) Flush() error          { return s.have.flush() }
func (s *diskSink) Close()                { _ = s.Flush(); s.f.Close(); s.have.side.Close() }
func chunkLen(man *crypto.Manifest, i uint32) int64 {
	return min(int64(man.ChunkSize), man.Size-int64(i)*int64(man.ChunkSize))
}

func (s *diskSink) Write(index uint32, plain []byte) error {
	s.reserve(int64(index)*int64(s.man.ChunkSize) + int64(len(plain)))
	if _, err := s.f.WriteAt(plain, int64(index)*int64(s.man.ChunkSize)); err != nil {
		return fmt.Errorf("write %s: %w", s.part, err)
	}
	if index == s.hashed {
		s.hash.Write(plain)
		s.hashed++
	}
	s.have.set(index)
	s.got++
	s.bytes += int64(len(plain))
	return nil
}

func (s *diskSink) Finish() (path, sum string, err error) {
	if sum, err = s.sum(); err != nil {
		return "", "", err
	}
	if sum != s.man.SHA256 {
		return "", "", fmt.Errorf("%q: SHA-256 %s, manifest says %s: %w", s.man.Name, sum, s.man.SHA256, ErrIntegrity)
	}
	if err := s.f.Close(); err != nil {
		return "", "", fmt.Errorf("close %s: %w", s.part, err)
	}
	s.have.side.Close()
	if path, err = placeFile(s.dir, s.man.Name, s.part); err != nil {
		return "", "", err
	}
	os.Remove(sidecarOf(s.part))
	return path, sum, nil
}

// sum returns the hex SHA-256 of the file: from the running hash when every
// chunk came in order, else by reading the partial file back.
func (s *diskSink) sum() (string, error) {
	if s.hashed == s.man.Chunks {
		return hex.EncodeToString(s.hash.Sum(nil)), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(s.f, 0, s.man.Size)); err != nil {
		return "", fmt.Errorf("hash %s: %w", s.part, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (s *diskSink) Abort() {
	s.f.Close()
	s.have.side.Close()
	removePartial(s.part)
}
