package transfer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"cloakroom/internal/crypto"
	"cloakroom/internal/mp4"
	"cloakroom/internal/protocol"
)

// NewManifest hashes f (the whole file and each chunk, in one read) and
// describes it under a fresh file id and key, committing to every chunk's
// hash. It returns the chunk hashes (32 bytes per chunk) for the origin's
// HashList.
func NewManifest(f *os.File, st os.FileInfo) (*crypto.Manifest, []byte, []byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, nil, fmt.Errorf("send: %w", err)
	}
	sum, chunkHashes, commit, err := HashFile(f, st.Size(), protocol.ChunkSize) // reads about 1 MiB at once
	if err != nil {
		return nil, nil, nil, fmt.Errorf("send: hash %s (did it change?): %w", f.Name(), err)
	}
	key, err := newFileKey()
	if err != nil {
		return nil, nil, nil, err
	}
	name := filepath.Base(f.Name())
	typ := mime.TypeByExtension(filepath.Ext(name))
	if typ == "" {
		typ = "application/octet-stream"
	}
	man := &crypto.Manifest{
		File: uuid.NewString(), Name: name, Type: typ, Size: st.Size(), ChunkSize: protocol.ChunkSize,
		Chunks: crypto.ChunkCount(st.Size(), protocol.ChunkSize), SHA256: hex.EncodeToString(sum[:]),
		Key: protocol.EncodeB64(key), Hashes: commit, Duration: MediaDuration(f, st.Size(), name),
	}
	return man, key, chunkHashes, nil
}

// MediaDuration is the duration in seconds (to the millisecond) of an
// .mp4, .m4v or .mov file read from its moov/mvhd box, for the manifest's
// optional duration; 0 for any other file, or when none is found or it is
// out of the manifest's range. No poster: the CLI has no video decoder.
func MediaDuration(r io.ReaderAt, size int64, name string) float64 {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".mp4", ".m4v", ".mov":
	default:
		return 0
	}
	d, err := mp4.Duration(r, size)
	if err != nil {
		return 0
	}
	d = math.Round(d*1000) / 1000
	if !(d > 0 && d <= crypto.MaxDuration) {
		return 0
	}
	return d
}

// Renew returns man under a new file id and key: the same content,
// announced again (no chunk key and nonce is ever used twice).
func Renew(man *crypto.Manifest) (*crypto.Manifest, []byte, error) {
	key, err := newFileKey()
	if err != nil {
		return nil, nil, err
	}
	m := *man
	m.File, m.Key = uuid.NewString(), protocol.EncodeB64(key)
	return &m, key, nil
}

func newFileKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("send: file key: %w", err)
	}
	return key, nil
}

// cipherFor makes the chunk cipher of a received manifest from sender.
func cipherFor(roomID [16]byte, man *crypto.Manifest, from string) (*crypto.ChunkCipher, error) {
	key, err := protocol.DecodeB64(man.Key)
	if err != nil {
		return nil, fmt.Errorf("manifest key: %w", err)
	}
	fid, err := uuid.Parse(man.File)
	if err != nil {
		return nil, fmt.Errorf("manifest file id: %w", err)
	}
	ciph, err := crypto.NewChunkCipher(key, roomID, from, fid, man.Chunks, man.Size)
	if err != nil {
		return nil, fmt.Errorf("chunk cipher: %w", err)
	}
	return ciph, nil
}

// checkManifestShape refuses a manifest whose SHA-256 could not name a file.
func checkManifestShape(man *crypto.Manifest) error {
	if len(man.SHA256) != 64 || strings.Trim(man.SHA256, "0123456789abcdef") != "" {
		return fmt.Errorf("manifest SHA-256 %q: %w", truncateReason(man.SHA256), ErrIntegrity)
	}
	return nil
}
