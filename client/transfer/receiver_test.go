package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// fakeSource is a ChunkSource that records what the receiver reports.
type fakeSource struct {
	mu      sync.Mutex
	reports []*protocol.DCMessage
}

func (s *fakeSource) Path() protocol.Path   { return protocol.PathDirect }
func (s *fakeSource) Gone() <-chan struct{} { return nil }
func (s *fakeSource) Report(m *protocol.DCMessage) {
	s.mu.Lock()
	s.reports = append(s.reports, m)
	s.mu.Unlock()
}

// fakeHost collects what a Receiver hands on.
type fakeHost struct {
	files chan File
	mu    sync.Mutex
	acks  []uint64
	haves []*protocol.Signal
	// offline lists members the room sees offline; the rest are online.
	offline map[string]bool
}

func (h *fakeHost) Stored(string, uint32) {}

func (h *fakeHost) Online(member string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.offline[member]
}

func (h *fakeHost) Progress(Progress) {}
func (h *fakeHost) Deliver(f File)    { h.files <- f }
func (h *fakeHost) Ack(items []uint64) error {
	h.mu.Lock()
	h.acks = append(h.acks, items...)
	h.mu.Unlock()
	return nil
}
func (h *fakeHost) TellHave(_ string, body *protocol.Signal) error {
	h.mu.Lock()
	h.haves = append(h.haves, body)
	h.mu.Unlock()
	return nil
}

// sealedFile writes content to a file and returns its manifest, key and the
// sealed chunks from sender, as a relay would deliver them.
func sealedFile(t *testing.T, roomID [16]byte, sender string, content []byte) (*crypto.Manifest, []protocol.ChunkDown) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	man, key, _, err := NewManifest(f, st)
	if err != nil {
		t.Fatal(err)
	}
	return man, sealChunksOf(t, roomID, sender, f, man, key)
}

func sealChunksOf(t *testing.T, roomID [16]byte, sender string, f *os.File, man *crypto.Manifest, key []byte) []protocol.ChunkDown {
	t.Helper()
	ciph, err := crypto.NewChunkCipher(key, roomID, sender, uuid.MustParse(man.File), man.Chunks, man.Size)
	if err != nil {
		t.Fatal(err)
	}
	var out []protocol.ChunkDown
	err = SealChunks(f, f.Name(), man, ciph, nil, func(i uint32, frame []byte) error {
		ch, err := protocol.ParseChunkUp(bytes.Clone(frame))
		if err != nil {
			return err
		}
		out = append(out, protocol.ChunkDown{Item: uint64(i) + 1, Sender: uuid.MustParse(sender), Chunk: ch})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func startReceiver(t *testing.T, dir string, roomID [16]byte) (*Receiver, *fakeHost, context.Context) {
	t.Helper()
	host := &fakeHost{files: make(chan File, 8)}
	r := NewReceiver(Config{Dir: dir, RoomID: roomID, Log: discardLog(), Host: host})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, host, ctx
}

func nextFile(t *testing.T, h *fakeHost) File {
	t.Helper()
	select {
	case f := <-h.files:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no file delivered")
		return File{}
	}
}

// TestReceiverDeliversAndResumes: chunks from a source reach a disk sink and
// the finished file; a second announcement of the same content (a new round)
// continues from the chunks the first one wrote, and says so.
func TestReceiverDeliversAndResumes(t *testing.T) {
	var roomID [16]byte
	sender := uuid.NewString()
	content := make([]byte, 3*protocol.ChunkSize+1234)
	rand.Read(content)
	man, chunks := sealedFile(t, roomID, sender, content)
	dir := t.TempDir()
	r, host, ctx := startReceiver(t, dir, roomID)
	src := &fakeSource{}
	if err := r.Start(ctx, man, sender, src); err != nil {
		t.Fatal(err)
	}
	for i := range chunks[:2] {
		if err := r.Chunk(ctx, &chunks[i], src); err != nil {
			t.Fatal(err)
		}
	}
	// The same content announced again under a new id and key.
	m2, k2, err := Renew(man)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	pf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	chunks2 := sealChunksOf(t, roomID, sender, pf, m2, k2)
	if err := r.Start(ctx, m2, sender, src); err != nil {
		t.Fatal(err)
	}
	for i := range chunks2[2:] {
		if err := r.Chunk(ctx, &chunks2[2+i], src); err != nil {
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
	if got.Resumed != 2*protocol.ChunkSize {
		t.Fatalf("resumed %d bytes, want %d", got.Resumed, 2*protocol.ChunkSize)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	if len(host.haves) != 2 || host.haves[0].Done || !host.haves[1].Done {
		t.Fatalf("have signals %+v: want the chunks held, then done", host.haves)
	}
}

// TestReceiverRefusesTamperedChunk: a chunk that does not open fails the
// reception, removes the partial file, and the source hears the verdict.
func TestReceiverRefusesTamperedChunk(t *testing.T) {
	var roomID [16]byte
	sender := uuid.NewString()
	content := bytes.Repeat([]byte("x"), protocol.ChunkSize+10)
	man, chunks := sealedFile(t, roomID, sender, content)
	dir := t.TempDir()
	r, host, ctx := startReceiver(t, dir, roomID)
	src := &fakeSource{}
	if err := r.Start(ctx, man, sender, src); err != nil {
		t.Fatal(err)
	}
	chunks[0].Sealed[0] ^= 1
	if err := r.Chunk(ctx, &chunks[0], src); err != nil {
		t.Fatal(err)
	}
	got := nextFile(t, host)
	if !errors.Is(got.Err, ErrIntegrity) {
		t.Fatalf("err %v, want ErrIntegrity", got.Err)
	}
	part, _ := partPaths(dir, man)
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("partial file left: %v", err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if n := len(src.reports); n == 0 || !src.reports[n-1].Failed {
		t.Fatalf("source not told of the failure: %+v", src.reports)
	}
}

// TestReceiverCancelledBySender: an xfer cancel from the file's sender
// ends the reception with ErrCancelled and removes the partial file; one
// from another member is ignored.
func TestReceiverCancelledBySender(t *testing.T) {
	var roomID [16]byte
	sender := uuid.NewString()
	content := bytes.Repeat([]byte("y"), 2*protocol.ChunkSize+10)
	man, chunks := sealedFile(t, roomID, sender, content)
	dir := t.TempDir()
	r, host, ctx := startReceiver(t, dir, roomID)
	src := &fakeSource{}
	if err := r.Start(ctx, man, sender, src); err != nil {
		t.Fatal(err)
	}
	if err := r.Chunk(ctx, &chunks[0], src); err != nil {
		t.Fatal(err)
	}
	if r.Cancel(ctx, man.File, uuid.NewString()) {
		t.Fatal("a cancel from another member ended the reception")
	}
	if !r.Cancel(ctx, man.File, sender) {
		t.Fatal("the sender's cancel did not end the reception")
	}
	got := nextFile(t, host)
	if !errors.Is(got.Err, ErrCancelled) || !strings.Contains(got.Err.Error(), "cancelled by the sender") {
		t.Fatalf("err %v, want ErrCancelled", got.Err)
	}
	part, _ := partPaths(dir, man)
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("partial file left: %v", err)
	}
	if r.Active(man.File) || r.Cancel(ctx, man.File, sender) {
		t.Fatal("a cancelled reception is still active")
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
