//go:build linux

package transfer

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// TestReceiverRefusesFileLargerThanDisk: a manifest announcing more than
// the download directory's free space is refused with a clear error before
// any block is reserved, and a file that fits reserves its blocks only as
// chunks arrive, not its whole announced size at once.
func TestReceiverRefusesFileLargerThanDisk(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	huge := free + 1<<30
	chunks := crypto.ChunkCount(huge, protocol.ChunkSize)
	if chunks > protocol.MaxChunks {
		t.Fatalf("the test directory has %d bytes free, more than a file can announce", free)
	}
	man := &crypto.Manifest{File: uuid.NewString(), Name: "huge.bin", Size: huge, ChunkSize: protocol.ChunkSize,
		Chunks: chunks, SHA256: strings.Repeat("ab", 32)}
	_, err := openDiskSink(dir, man)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("open a sink for %d bytes with %d free: %v, want ErrNoSpace", huge, free, err)
	}
	t.Logf("refused: %v", err)

	// 1 GiB announced: after one chunk, far less than that is allocated.
	man.File, man.Size = uuid.NewString(), 1<<30
	man.Chunks = crypto.ChunkCount(man.Size, protocol.ChunkSize)
	s, err := openDiskSink(dir, man)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(0, make([]byte, protocol.ChunkSize)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.part)
	if err != nil {
		t.Fatal(err)
	}
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks > reserveStep+2*protocol.ChunkSize {
		t.Fatalf("%d bytes allocated after one chunk of a 1 GiB file, want at most %d", blocks, reserveStep+2*protocol.ChunkSize)
	}
}
