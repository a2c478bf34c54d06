//go:build unix

package transfer

import (
	"bytes"
	"crypto/rand"
	"os"
	"testing"

	"github.com/google/uuid"

	"cloakroom/internal/protocol"
)

// TestReceiverDoesNotFollowPlantedLinks: another local user who can write
// to the download directory plants a symlink at the partial file's
// predictable name and a hard link at the sidecar's. The reception writes
// neither target and still delivers the file.
func TestReceiverDoesNotFollowPlantedLinks(t *testing.T) {
	var roomID [16]byte
	sender := uuid.NewString()
	content := make([]byte, 2*protocol.ChunkSize+77)
	rand.Read(content)
	man, chunks := sealedFile(t, roomID, sender, content)
	dir := t.TempDir()
	part, side := partPaths(dir, man)
	victims := t.TempDir()
	linked, hard := victims+"/precious", victims+"/also-precious"
	for _, v := range []string{linked, hard} {
		if err := os.WriteFile(v, []byte("do not touch"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(linked, part); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(hard, side); err != nil {
		t.Fatal(err)
	}

	r, host, ctx := startReceiver(t, dir, roomID)
	src := &fakeSource{}
	if err := r.Start(ctx, man, sender, src); err != nil {
		t.Fatal(err)
	}
	for i := range chunks {
		if err := r.Chunk(ctx, &chunks[i], src); err != nil {
			t.Fatal(err)
		}
	}
	got := nextFile(t, host)
	if got.Err != nil {
		t.Fatal(got.Err)
	}
	if b, _ := os.ReadFile(got.Path); !bytes.Equal(b, content) {
		t.Fatalf("received %d bytes, not the content sent", len(b))
	}
	for _, v := range []string{linked, hard} {
		if b, _ := os.ReadFile(v); string(b) != "do not touch" {
			t.Fatalf("%s was written through a planted link: %q", v, b)
		}
	}
}
