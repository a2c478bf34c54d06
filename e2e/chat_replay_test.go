package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// chatBody is a chat plaintext as a member seals it (docs/PROTOCOL.md).
func chatPlain(t *testing.T, text, sess string, seq uint64, sent time.Time) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"kind": "chat", "text": text, "sess": sess, "seq": seq,
		"ts": sent.UnixMilli(), "pad": ""})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileReplayedAndReorderedChat: a server that recorded an earlier
// session lists that session's member to a later joiner and delivers its
// chat again, in another order; and it reorders and drops the chat of a
// member who is really there. The later joiner never verifies the recorded
// member's presence (it cannot answer the challenge), shows no replayed message,
// shows the live member's messages in their sender's order (a held-back one
// marked late), and shows a dropped message as a gap.
func TestHostileReplayedAndReorderedChat(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	keys := crypto.DeriveRoom(secret)

	// The recording: a member of a session an hour ago, its announcement
	// and three chat messages, sealed as that member sealed them (the test
	// holds the room secret, as that member did).
	ghost := uuid.NewString()
	ghostKey, err := crypto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ghostSess := strings.Repeat("6a", 16)
	var recorded [][]byte
	for i, text := range []string{"old one", "old two", "old three"} {
		_, sealed, err := keys.SealEnvelope(crypto.EnvelopeMeta{Sender: ghost},
			chatPlain(t, text, ghostSess, uint64(i+1), time.Now().Add(-time.Hour+time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		recorded = append(recorded, sealed)
	}

	// And a file it announced then: a reception must not start.
	oldFile := uuid.NewString()
	oldMan := &crypto.Manifest{File: oldFile, Name: "old.bin", Size: 100, ChunkSize: protocol.ChunkSize, Chunks: 1,
		SHA256: strings.Repeat("ab", 32), Key: protocol.EncodeB64(make([]byte, 32)),
		Sess: ghostSess, Seq: 4, TS: time.Now().Add(-time.Hour + 4*time.Second).UnixMilli()}
	oldManSealed, err := keys.SealManifest(ghost, oldMan)
	if err != nil {
		t.Fatal(err)
	}

	// The server's edits on the joiner's connection: the ghost is listed
	// in the welcome (online) and its recorded chat delivered in reverse
	// order; the live member's five messages are delivered as 1, 3, 2, 5.
	alice := dialPeer(ctx, t, secret.Link(ts.URL), "alice", nil)
	var held [][]byte
	mitm := newWSMITM(t, ts.URL, mitmOpts{DownTextN: func() frameTransform {
		replayID := uint64(1 << 40)
		return func(b []byte) [][]byte {
			m, err := protocol.Decode(b)
			switch {
			case err != nil:
			case m.Type == protocol.TypeWelcome:
				m.Members = append(m.Members, protocol.MemberInfo{Member: ghost, Online: true,
					Pub: protocol.EncodeB64(ghostKey.Pub), MAC: protocol.EncodeB64(keys.Announce(ghost, ghostKey.Pub))})
				out := [][]byte{mustEncode(t, m), mustEncode(t, &protocol.Message{Type: protocol.TypeMsg, ID: replayID,
					From: ghost, File: oldFile, Chunks: 1, Data: protocol.EncodeB64(oldManSealed)})}
				for i := len(recorded) - 1; i >= 0; i-- {
					replayID++
					out = append(out, mustEncode(t, &protocol.Message{Type: protocol.TypeMsg, ID: replayID,
						From: ghost, Data: protocol.EncodeB64(recorded[i])}))
				}
				return out
			case m.Type == protocol.TypeMsg && m.File == "" && m.From == alice.ID():
				held = append(held, b) // one goroutine per connection calls this
				switch len(held) {
				case 1, 2, 3, 4:
					return nil
				case 5:
					return [][]byte{held[0], held[2], held[1], held[4]} // the fourth is dropped
				}
			}
			return [][]byte{b}
		}
	}})
	bob := dialPeer(ctx, t, secret.Link(mitm.HTTP.URL), "bob", nil)
	// Verified both ways first: alice greets bob with her chat history
	// (a sealed hist signal the server cannot forge) when she verifies him;
	// done before she writes, it holds nothing that could make up for what
	// the server drops below.
	meshVerified(ctx, t, alice, bob)
	for _, text := range []string{"one", "two", "three", "four", "five"} {
		if err := alice.SendChat(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	got, err := bob.chats.wait(ctx, func(cs []client.Chat) bool { return len(cs) >= 4 })
	if err != nil {
		t.Fatalf("bob's chats %+v: %v", bob.chats.snapshot(), err)
	}
	type shown struct {
		from, text string
		late       bool
		missing    uint64
	}
	// One more, in order: everything the server sent bob before it (the
	// replayed chat came first of all) has been handled by then.
	if err := alice.SendChat(ctx, "six"); err != nil {
		t.Fatal(err)
	}
	if got, err = bob.chats.wait(ctx, func(cs []client.Chat) bool { return len(cs) > 0 && cs[len(cs)-1].Text == "six" }); err != nil {
		t.Fatalf("bob's chats %+v: %v", bob.chats.snapshot(), err)
	}
	// The recorded member is listed online by the server but never answers
	// bob's presence challenge; alice does.
	if _, err := bob.presence.wait(ctx, func([]presenceEvent) bool { return verified(bob, alice.ID()) }); err != nil {
		t.Fatalf("alice never verified by bob: %v", err)
	}
	if verified(bob, ghost) {
		t.Fatal("bob verified the replayed member")
	}
	want := []shown{{alice.ID(), "one", false, 0}, {alice.ID(), "three", false, 1},
		{alice.ID(), "two", true, 0}, {alice.ID(), "five", false, 1}, {alice.ID(), "six", false, 0}}
	if len(got) != len(want) {
		t.Fatalf("bob shows %d chats, want %d: %+v", len(got), len(want), got)
	}
	if ps := bob.progress.snapshot(); len(ps) != 0 {
		t.Errorf("bob started receiving the replayed file: %+v", ps[0])
	}
	if parts := partFiles(t, bob.dir); len(parts) != 0 {
		t.Errorf("bob holds partial files %q for the replayed file", parts)
	}
	for i, c := range got {
		if (shown{c.From, c.Text, c.Late, c.Missing}) != want[i] {
			t.Errorf("chat %d: from %.8s %q late %v missing %d, want %+v", i, c.From, c.Text, c.Late, c.Missing, want[i])
		}
	}
}

// verified reports whether p has verified member's presence.
func verified(p *peer, member string) bool {
	for _, m := range p.Members() {
		if m.ID == member {
			return m.Verified
		}
	}
	return false
}

func mustEncode(t *testing.T, m *protocol.Message) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
