package transfer

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"testing"

	"github.com/google/uuid"

	"cloakroom/internal/protocol"
)

// TestReceiverRefusesContentHijack: a member who saw A's manifest announces
// the same hash, size and chunk size under its own key while A's reception
// is under way. The receiver refuses it, keeps A's reception, writes A's
// chunks, and A's file arrives whole; the impostor's chunks write nothing.
// Once A is offline, a new announcement of the same content (a restarted
// sender) may take the partial file over.
func TestReceiverRefusesContentHijack(t *testing.T) {
	var roomID [16]byte
	a, mallory := uuid.NewString(), uuid.NewString()
	content := make([]byte, 4*protocol.ChunkSize+99)
	rand.Read(content)
	man, chunks := sealedFile(t, roomID, a, content)
	dir := t.TempDir()
	r, host, ctx := startReceiver(t, dir, roomID)
	src := &fakeSource{}
	if err := r.Start(ctx, man, a, src); err != nil {
		t.Fatal(err)
	}
	for i := range chunks[:2] {
		if err := r.Chunk(ctx, &chunks[i], src); err != nil {
			t.Fatal(err)
		}
	}

	// Mallory's manifest claims A's content; its chunks are junk.
	fake, fakeKey, err := Renew(man)
	if err != nil {
		t.Fatal(err)
	}
	junkPath := t.TempDir() + "/junk"
	if err := os.WriteFile(junkPath, make([]byte, len(content)), 0o600); err != nil {
		t.Fatal(err)
	}
	junk, err := os.Open(junkPath)
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	junkChunks := sealChunksOf(t, roomID, mallory, junk, fake, fakeKey)
	if err := r.Start(ctx, fake, mallory, src); !errors.Is(err, ErrSameContent) {
		t.Fatalf("impostor's announcement: %v, want ErrSameContent", err)
	}
	for i := range junkChunks {
		if err := r.Chunk(ctx, &junkChunks[i], src); err != nil {
			t.Fatal(err)
		}
	}
	for i := range chunks[2:] {
		if err := r.Chunk(ctx, &chunks[2+i], src); err != nil {
			t.Fatal(err)
		}
	}
	got := nextFile(t, host)
	if got.Err != nil || got.ID != man.File {
		t.Fatalf("A's file: %+v", got)
	}
	if b, _ := os.ReadFile(got.Path); !bytes.Equal(b, content) {
		t.Fatal("A's file does not hold A's content")
	}
	host.mu.Lock()
	for _, h := range host.haves {
		if h.File == fake.File {
			t.Fatalf("the impostor was told what the receiver holds: %+v", h)
		}
	}
	host.mu.Unlock()

	// A restarted sender (a new id) continues a reception whose sender is
	// offline.
	man2, chunks2 := sealedFile(t, roomID, a, content[:3*protocol.ChunkSize])
	if err := r.Start(ctx, man2, a, src); err != nil {
		t.Fatal(err)
	}
	if err := r.Chunk(ctx, &chunks2[0], src); err != nil {
		t.Fatal(err)
	}
	host.mu.Lock()
	host.offline = map[string]bool{a: true}
	host.mu.Unlock()
	restarted := uuid.NewString()
	renewed, _, err := Renew(man2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, renewed, restarted, src); err != nil {
		t.Fatalf("restarted sender while the old one is offline: %v", err)
	}
}
