package e2e

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"cloakroom/client"
	"cloakroom/internal/protocol"
)

// frameLog records every frame the server received (Config.OnFrame).
type frameLog struct {
	mu     sync.Mutex
	frames []recordedFrame
}

type recordedFrame struct {
	binary bool
	data   []byte
}

func (l *frameLog) record(binary bool, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frames = append(l.frames, recordedFrame{binary, bytes.Clone(data)})
}

func (l *frameLog) snapshot() []recordedFrame {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.frames)
}

// TestServerNeverSeesPlaintext records every frame the server receives while
// a chat and a file go through the relay, and checks that none of the
// plaintext (file content, file name, chat text, file hash) is in any of
// them, as sent or with the JSON data fields base64-decoded; the relay store
// ends empty.
func TestServerNeverSeesPlaintext(t *testing.T) {
	ctx := testCtx(t)
	var log frameLog
	ts := newServer(t, serverOpts{OnFrame: log.record})
	link := newSecret(t).Link(ts.URL)
	alice := dialPeer(ctx, t, link, "alice", nil)
	bob := dialPeer(ctx, t, link, "bob", nil)
	meshOnline(ctx, t, alice, bob)

	contentMarker := randomMarker("CONTENT")
	nameMarker := randomMarker("NAME")
	chatMarker := randomMarker("CHAT")
	name := "holiday " + nameMarker + ".bin"
	const size = 3<<20 + 12345
	path, sum := makeFile(t, t.TempDir(), name, size, contentMarker)
	chatText := "the meeting point is " + chatMarker

	// The chat goes first, so bob acks it before any chunk of the file and
	// "delivered" for the file implies the server has processed every ack.
	if err := alice.SendChat(ctx, chatText); err != nil {
		t.Fatalf("SendChat: %v", err)
	}
	rep, err := alice.SendFile(ctx, path)
	if err != nil {
		t.Fatalf("SendFile: %v", err)
	}
	if !slices.Equal(rep.Delivered, []string{bob.ID()}) || len(rep.Failed) != 0 {
		t.Fatalf("SendFile report: delivered %v failed %v, want delivered to bob %s", rep.Delivered, rep.Failed, bob.ID())
	}
	waitChat(ctx, t, bob, "with the marker", func(c client.Chat) bool { return c.Text == chatText && c.From == alice.ID() })
	f := nextFile(ctx, t, bob)
	if f.Err != nil || f.Name != name || f.SHA256 != sum || f.From != alice.ID() {
		t.Fatalf("bob received %+v, want %q from alice with SHA-256 %s", f, name, sum)
	}
	if got := fileSHA256(t, f.Path); got != sum {
		t.Fatalf("received file SHA-256 %s, want %s", got, sum)
	}

	// Positive controls: the plaintext does hold the markers, and the
	// detector finds them there; the frames recorded carry the whole file.
	plain, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rawSum, _ := hex.DecodeString(sum)
	needles := [][]byte{
		[]byte(contentMarker), []byte(nameMarker), []byte(name), []byte(chatMarker),
		[]byte(chatText), []byte(sum), rawSum, plain[1000:1064], // 64 bytes of random content
	}
	if found := containsAny(plain, needles); !slices.Contains(found, contentMarker) {
		t.Fatalf("positive control: the content marker is not in the plaintext file (found %q)", found)
	}
	if found := containsAny([]byte(filepath.Base(f.Path)), needles); !slices.Contains(found, nameMarker) {
		t.Fatalf("positive control: the name marker is not in the received file name")
	}

	frames := log.snapshot()
	var total, binaryFrames, dataFields int
	for i, fr := range frames {
		total += len(fr.data)
		if found := containsAny(fr.data, needles); len(found) > 0 {
			t.Errorf("frame %d (binary %v, %d bytes) holds plaintext %q", i, fr.binary, len(fr.data), found)
		}
		if fr.binary {
			binaryFrames++
			// Every chunk frame has the same length (the last chunk is
			// padded), so the relay learns the chunk count, not the size.
			if want := protocol.ChunkUpHeader + protocol.MaxSealedChunk; len(fr.data) != want {
				t.Errorf("chunk frame %d is %d bytes, want %d: its length leaks the file size", i, len(fr.data), want)
			}
			continue
		}
		m, err := protocol.Decode(fr.data)
		if err != nil {
			t.Errorf("frame %d from a client does not decode: %v", i, err)
			continue
		}
		fields := map[string]string{"data": m.Data, "verifier": m.Verifier, "pub": m.Pub, "mac": m.MAC}
		for key, field := range fields {
			if field == "" {
				continue
			}
			b, err := protocol.DecodeB64(field)
			if err != nil {
				t.Errorf("frame %d (%s): %s does not decode as base64url: %v", i, m.Type, key, err)
				continue
			}
			if key == "data" {
				dataFields++
			}
			if found := containsAny(b, needles); len(found) > 0 {
				t.Errorf("frame %d (%s): decoded %s holds plaintext %q", i, m.Type, key, found)
			}
		}
	}
	chunks := (size + protocol.ChunkSize - 1) / protocol.ChunkSize
	if total < size {
		t.Errorf("positive control: the server received %d bytes in all, less than the %d-byte file", total, size)
	}
	if binaryFrames < chunks {
		t.Errorf("positive control: %d binary frames recorded, want at least %d chunks", binaryFrames, chunks)
	}
	if dataFields < 2 {
		t.Errorf("positive control: %d data fields decoded, want at least the chat and the manifest", dataFields)
	}

	// The relay keeps nothing once everything is acked.
	if st := ts.Store.Stats(); st.Bytes != 0 || st.Items != 0 {
		t.Errorf("store after delivery: %+v, want empty", st)
	}
	if st := ts.Srv.Stats(); st.Rooms != 1 || st.Members != 2 || st.Online != 2 {
		t.Errorf("server stats %+v, want 1 room, 2 members, 2 online", st)
	}
}
