package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// rawJoin dials /ws with a plain WebSocket and sends a hand-made join for
// room with the given verifier and a fresh member id and key.
func rawJoin(ctx context.Context, t *testing.T, serverURL, room string, verifier []byte) (*websocket.Conn, string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(serverURL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	id, err := crypto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	member := uuid.NewString()
	join, err := protocol.Encode(&protocol.Message{
		Type: protocol.TypeJoin, V: protocol.Version, Room: room, Verifier: protocol.EncodeB64(verifier),
		Member: member, Pub: protocol.EncodeB64(id.Pub), MAC: protocol.EncodeB64(randomBytes(32)),
	})
	if err != nil {
		t.Fatalf("encode join: %v", err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		t.Fatalf("raw join: %v", err)
	}
	return ws, member
}

// TestWrongVerifier: a client that knows the room id but not the verifier is
// refused with error{bad_verifier} and a 4001 close, learns nothing of the
// room on the way, and the members never see it.
func TestWrongVerifier(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	room := crypto.DeriveRoom(secret).RoomIDString()
	link := secret.Link(ts.URL)
	alice := dialPeer(ctx, t, link, "alice", nil)
	bob := dialPeer(ctx, t, link, "bob", nil)
	meshOnline(ctx, t, alice, bob)
	// Room traffic before and while the intruder knocks: an item that would
	// be owed to a member, and presence.
	if err := alice.SendChat(ctx, "before the intruder"); err != nil {
		t.Fatal(err)
	}

	ws, intruder := rawJoin(ctx, t, ts.URL, room, randomBytes(32))
	if err := alice.SendChat(ctx, "while the intruder knocks"); err != nil {
		t.Fatal(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	var got []string
	var closeErr *websocket.CloseError
	sawError := false
	for {
		kind, data, err := ws.ReadMessage()
		if err != nil {
			if !errors.As(err, &closeErr) {
				t.Fatalf("intruder: connection ended without a close frame: %v (frames: %q)", err, got)
			}
			break
		}
		if kind != websocket.TextMessage {
			t.Errorf("intruder received a binary frame of %d bytes", len(data))
			got = append(got, "<binary>")
			continue
		}
		got = append(got, string(data))
		m, err := protocol.Decode(data)
		switch {
		case err != nil:
			t.Errorf("intruder received an undecodable frame %q: %v", data, err)
		case m.Type != protocol.TypeError || sawError:
			t.Errorf("intruder received %q: want exactly one error and then the close", data)
		case m.Code != protocol.CodeBadVerifier:
			t.Errorf("intruder got error code %q (%s), want %q", m.Code, m.Error, protocol.CodeBadVerifier)
		default:
			sawError = true
			// The error must be a client.ServerError the client library
			// treats as fatal (it stops reconnecting).
			se := &client.ServerError{Code: m.Code, Text: m.Error}
			if !se.Fatal() {
				t.Errorf("client.ServerError{%q}.Fatal() = false, want true", m.Code)
			}
		}
	}
	if !sawError {
		t.Errorf("intruder got no error{bad_verifier} before the close (frames: %q)", got)
	}
	if closeErr.Code != 4001 {
		t.Errorf("intruder close code %d (%q), want 4001", closeErr.Code, closeErr.Text)
	}

	// The members never saw the intruder: a member joining after it was
	// refused is the next presence event they get.
	carol := dialPeer(ctx, t, link, "carol", nil)
	waitPresence(ctx, t, alice, carol.ID(), protocol.EventJoin, 1)
	waitPresence(ctx, t, bob, carol.ID(), protocol.EventJoin, 1)
	for _, p := range []*peer{alice, bob} {
		for _, ev := range p.presence.snapshot() {
			if ev.Member == intruder {
				t.Errorf("%s saw presence %q of the refused intruder", p.name, ev.Event)
			}
		}
		if slices.ContainsFunc(p.Members(), func(m client.Member) bool { return m.ID == intruder }) {
			t.Errorf("%s lists the refused intruder as a member", p.name)
		}
	}
	waitChat(ctx, t, bob, "from alice", func(c client.Chat) bool { return c.Text == "while the intruder knocks" })
	if st := ts.Srv.Stats(); st.Members != 3 {
		t.Errorf("server has %d members, want 3 (the intruder is not one): %+v", st.Members, st)
	}
}

// TestWrongVerifierDial: the client library reports a refused join as a
// fatal *client.ServerError with code bad_verifier from Dial. A man in the
// middle swaps the verifier of the client's join for a random one (the
// invite alone cannot give a right room id with a wrong verifier).
func TestWrongVerifierDial(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	alice := dialPeer(ctx, t, secret.Link(ts.URL), "alice", nil)
	mitm := newWSMITM(t, ts.URL, mitmOpts{UpText: func(b []byte) []byte {
		m, err := protocol.Decode(b)
		if err != nil || m.Type != protocol.TypeJoin {
			return b
		}
		m.Verifier = protocol.EncodeB64(randomBytes(32))
		out, err := protocol.Encode(m)
		if err != nil {
			panic(err)
		}
		return out
	}})
	var presence events[presenceEvent]
	c, err := client.Dial(ctx, secret.Link(mitm.HTTP.URL), client.Options{
		Dir:        t.TempDir(),
		OnPresence: func(m client.Member, ev string) { presence.add(presenceEvent{m.ID, ev}) },
		OnChat:     func(c client.Chat) { t.Errorf("refused client got a chat %+v", c) },
	})
	if err == nil {
		c.Close()
		t.Fatal("Dial with a wrong verifier succeeded")
	}
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != protocol.CodeBadVerifier {
		t.Fatalf("Dial error %v (%T), want a *client.ServerError with code %q", err, err, protocol.CodeBadVerifier)
	}
	if !se.Fatal() {
		t.Errorf("bad_verifier ServerError is not Fatal")
	}
	if evs := presence.snapshot(); len(evs) != 0 {
		t.Errorf("refused client saw presence events %+v", evs)
	}
	// The room is unharmed: a member joining now is alice's first event.
	bob := dialPeer(ctx, t, secret.Link(ts.URL), "bob", nil)
	waitPresence(ctx, t, alice, bob.ID(), protocol.EventJoin, 1)
	if evs := alice.presence.snapshot(); len(evs) != 1 {
		t.Errorf("alice saw presence %+v, want only bob's join", evs)
	}
}

// TestOtherRoomIsolated: a member of room B gets nothing of room A's chat
// and file traffic, and room A gets nothing of B's.
func TestOtherRoomIsolated(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	linkA := newSecret(t).Link(ts.URL)
	linkB := newSecret(t).Link(ts.URL)
	b1 := dialPeer(ctx, t, linkB, "b1", nil)
	b2 := dialPeer(ctx, t, linkB, "b2", nil)
	meshOnline(ctx, t, b1, b2)
	a1 := dialPeer(ctx, t, linkA, "a1", nil)
	a2 := dialPeer(ctx, t, linkA, "a2", nil)
	meshOnline(ctx, t, a1, a2)

	// Room A traffic, to the end.
	aMarker := randomMarker("ROOM-A")
	if err := a1.SendChat(ctx, "A chat "+aMarker); err != nil {
		t.Fatal(err)
	}
	pathA, sumA := makeFile(t, t.TempDir(), "a-file.bin", 700<<10, aMarker)
	rep, err := a1.SendFile(ctx, pathA)
	if err != nil {
		t.Fatalf("room A SendFile: %v (report %+v)", err, rep)
	}
	if f := nextFile(ctx, t, a2); f.Err != nil || f.SHA256 != sumA {
		t.Fatalf("a2 received %+v, want a-file.bin with SHA-256 %s", f, sumA)
	}
	waitChat(ctx, t, a2, "room A chat", func(c client.Chat) bool { return c.Text == "A chat "+aMarker })
	if err := a2.SendChat(ctx, "A reply"); err != nil {
		t.Fatal(err)
	}
	waitChat(ctx, t, a1, "room A reply", func(c client.Chat) bool { return c.Text == "A reply" })

	// Room B traffic; b1 must see exactly that.
	if err := b2.SendChat(ctx, "B chat"); err != nil {
		t.Fatal(err)
	}
	pathB, sumB := makeFile(t, t.TempDir(), "b-file.bin", 300<<10, "")
	if _, err := b2.SendFile(ctx, pathB); err != nil {
		t.Fatalf("room B SendFile: %v", err)
	}
	waitChat(ctx, t, b1, "room B chat", func(c client.Chat) bool { return c.Text == "B chat" })
	f := nextFile(ctx, t, b1)
	if f.Err != nil || f.Name != "b-file.bin" || f.SHA256 != sumB || f.From != b2.ID() {
		t.Fatalf("b1's first file is %+v, want b-file.bin from b2", f)
	}

	if got := b1.chats.snapshot(); len(got) != 1 || got[0].From != b2.ID() {
		t.Errorf("b1 chats %+v, want only b2's", got)
	}
	for _, ev := range b1.presence.snapshot() {
		if ev.Member != b2.ID() {
			t.Errorf("b1 saw presence %+v of a member not in room B", ev)
		}
	}
	for _, m := range b1.Members() {
		if m.ID != b2.ID() {
			t.Errorf("b1 lists member %s not in room B", m.ID)
		}
	}
	for _, pr := range b1.progress.snapshot() {
		if pr.File != f.ID {
			t.Errorf("b1 saw progress of a file not sent in room B: %+v", pr)
		}
	}
	if got := visibleFiles(t, b1.dir); !slices.Equal(got, []string{"b-file.bin"}) {
		t.Errorf("b1's directory holds %q, want only b-file.bin", got)
	}
	// And the other way round.
	for _, p := range []*peer{a1, a2} {
		for _, c := range p.chats.snapshot() {
			if c.Text == "B chat" {
				t.Errorf("%s (room A) got room B's chat", p.name)
			}
		}
		for _, ev := range p.presence.snapshot() {
			if ev.Member == b1.ID() || ev.Member == b2.ID() {
				t.Errorf("%s (room A) saw presence %+v of a room B member", p.name, ev)
			}
		}
	}
	if got := visibleFiles(t, a2.dir); !slices.Equal(got, []string{"a-file.bin"}) {
		t.Errorf("a2's directory holds %q, want only a-file.bin", got)
	}
}
