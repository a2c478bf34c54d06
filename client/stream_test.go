package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cloakroom/client/transfer"
	"cloakroom/internal/crypto"
)

// streamEntry is an entry of a 3½-chunk file written at a path in a temp
// dir, none of it held yet; sum is the manifest's SHA-256.
func streamEntry(t *testing.T, sum string) (*entry, []byte) {
	t.Helper()
	const cs = 1000
	data := make([]byte, 3*cs+500)
	rand.Read(data)
	if sum == "" {
		h := sha256.Sum256(data)
		sum = hex.EncodeToString(h[:])
	}
	path := filepath.Join(t.TempDir(), "part")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	man := &crypto.Manifest{Name: "f", Size: int64(len(data)), ChunkSize: cs, Chunks: 4, SHA256: sum}
	return &entry{man: man, held: transfer.NewBits(4), path: path}, data
}

// TestStreamInOrder: a Read waits for the next chunk, is woken when it is
// marked held (not before), and returns the file in order with io.EOF at
// the end.
func TestStreamInOrder(t *testing.T) {
	e, data := streamEntry(t, "")
	s := &Stream{ctx: context.Background(), e: e, hash: sha256.New()}
	defer s.Close()
	e.markHeld(1) // not the first: nothing to read yet
	got := make(chan []byte)
	go func() {
		b, err := io.ReadAll(s)
		if err != nil {
			t.Errorf("ReadAll: %v", err)
		}
		got <- b
	}()
	select {
	case <-got:
		t.Fatal("the stream ended before chunk 0 was held")
	case <-time.After(50 * time.Millisecond):
	}
	for _, i := range []uint32{3, 0, 2} {
		e.markHeld(i)
	}
	select {
	case b := <-got:
		if string(b) != string(data) {
			t.Fatalf("stream returned %d bytes, not the file's %d", len(b), len(data))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end once every chunk was held")
	}
}

// TestStreamMismatch: bytes whose SHA-256 is not the manifest's end in an
// ErrIntegrity error, not io.EOF.
func TestStreamMismatch(t *testing.T) {
	e, _ := streamEntry(t, hex.EncodeToString(make([]byte, 32)))
	e.setCopy(e.path, true)
	s := &Stream{ctx: context.Background(), e: e, hash: sha256.New()}
	defer s.Close()
	_, err := io.ReadAll(s)
	if !errors.Is(err, transfer.ErrIntegrity) {
		t.Fatalf("ReadAll: %v, want ErrIntegrity", err)
	}
}

// TestStreamFailed: a reception that fails, or ctx, ends a waiting Read.
func TestStreamFailed(t *testing.T) {
	e, _ := streamEntry(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{ctx: ctx, e: e, hash: sha256.New()}
	done := make(chan error, 1)
	go func() { _, err := s.Read(make([]byte, 10)); done <- err }()
	boom := errors.New("boom")
	time.Sleep(20 * time.Millisecond)
	e.failed(boom)
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("Read: %v, want the reception's error", err)
	}
	e.failErr = nil
	go func() { _, err := s.Read(make([]byte, 10)); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read: %v, want context.Canceled", err)
	}
}
