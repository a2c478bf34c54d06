package signaling

import (
	"slices"
	"testing"
	"time"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// room3 joins three members to a fresh room and drains the presence events.
func room3(e *testEnv) (rc roomCreds, a, b, c *tclient) {
	rc = newCreds()
	a, b = e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	c = e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, c.id.member)
	b.expectPresence(protocol.EventJoin, c.id.member)
	return rc, a, b, c
}

func TestChatFanOutAndAck(t *testing.T) {
	e := newEnv(t)
	_, a, b, c := room3(e)
	data := randB64(100)
	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: data})
	for _, r := range []*tclient{b, c} {
		m := r.expect(protocol.TypeMsg)
		if m.From != a.id.member || m.Data != data || m.ID == 0 || m.File != "" {
			t.Fatalf("msg %+v", m)
		}
		r.ack(m.ID)
		r.sync()
	}
	e.storeEmpty()
}

func TestMsgToOfflineMember(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a, idb := e.join(rc, newIdent()), newIdent()
	b := e.join(rc, idb)
	a.expectPresence(protocol.EventJoin, idb.member)
	b.close()
	a.expectPresence(protocol.EventOffline, idb.member)

	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(20)})
	a.sync()

	// Not acked: delivered again after the next reconnect.
	b = e.join(rc, idb)
	first := b.expect(protocol.TypeMsg)
	b.close()
	b = e.join(rc, idb)
	again := b.expect(protocol.TypeMsg)
	if again.ID != first.ID || again.Data != first.Data {
		t.Fatalf("redelivered %+v, want %+v", again, first)
	}

	// Acked: never again. The next msg b gets is a newer one.
	b.ack(again.ID)
	b.sync()
	b.close()
	b = e.join(rc, idb)
	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(21)})
	if m := b.expect(protocol.TypeMsg); m.ID == first.ID {
		t.Fatal("acked msg delivered again")
	}
}

func TestFileFlow(t *testing.T) {
	e := newEnv(t)
	_, a, b, c := room3(e)
	f := newTestFile(130, 100)
	ok := a.announce(f)
	want := []string{b.id.member, c.id.member}
	slices.Sort(want)
	if !slices.Equal(ok.Recipients, want) {
		t.Fatalf("recipients %v, want %v", ok.Recipients, want)
	}
	if again := a.announce(f); !slices.Equal(again.Recipients, want) { // idempotent
		t.Fatalf("second file_ok %v", again.Recipients)
	}
	a.upload(f, 0, len(f.chunks))
	for _, r := range []*tclient{b, c} {
		r.ack(r.expectManifest(f, a.id.member).ID)
		var ids []uint64
		for i := range f.chunks {
			ids = append(ids, r.expectChunk(f, i, a.id.member))
			if len(ids) == 50 || i == len(f.chunks)-1 {
				r.ack(ids...)
				ids = nil
			}
		}
	}
	// a learns progress every progressEvery chunks and at the last (130),
	// then delivered, per recipient.
	wantProgress := len(f.chunks)/progressEvery + 1
	got := map[string][]uint32{}
	delivered := map[string]bool{}
	for len(delivered) < 2 {
		m := a.next()
		switch m.Type {
		case protocol.TypeProgress:
			got[m.Member] = append(got[m.Member], m.Acked)
		case protocol.TypeDelivered:
			if delivered[m.Member] || len(got[m.Member]) != wantProgress {
				t.Fatalf("delivered for %s after progress %v", m.Member, got[m.Member])
			}
			delivered[m.Member] = true
		default:
			t.Fatalf("sender got %+v", m)
		}
	}
	var steps []uint32
	for n := progressEvery; n < len(f.chunks); n += progressEvery {
		steps = append(steps, uint32(n))
	}
	steps = append(steps, uint32(len(f.chunks)))
	for _, m := range want {
		if !slices.Equal(got[m], steps) {
			t.Fatalf("progress for %s: %v", m, got[m])
		}
	}
	e.storeEmpty()
	b.send(&protocol.Message{Type: protocol.TypeFile, File: f.id, Chunks: 130, Data: randB64(10)})
	b.expectError(protocol.CodeBadRequest) // someone else's file id
}

func TestChunkErrors(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	f := newTestFile(2, 20)
	a.upload(f, 0, 1)
	if m := a.expectError(protocol.CodeNoSuchFile); m.File != f.id {
		t.Fatalf("error for file %q", m.File)
	}
	a.announce(f)
	b.expectManifest(f, a.id.member)
	b.upload(f, 0, 1) // not b's file
	b.expectError(protocol.CodeNoSuchFile)
	other := newTestFile(3, 20)
	other.id = f.id
	for i := range other.chunks {
		other.chunks[i].File = f.chunks[0].File
	}
	a.upload(other, 0, 1) // count differs from the announced one
	a.expectError(protocol.CodeBadRequest)
}

func TestSlowClientCutOff(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.SendQueue = 4 })
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)

	// s joins and then never reads.
	ids := newIdent()
	ws, _, err := smallRecvDialer().Dial(e.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(joinMsg(rc, ids)); err != nil {
		t.Fatal(err)
	}
	a.expectPresence(protocol.EventJoin, ids.member)
	b.expectPresence(protocol.EventJoin, ids.member)

	// a sends s signals until the server cuts s off. After each, a chunk of
	// an unknown file makes the server answer no_such_file: a round trip
	// that keeps a's own queue short.
	sig := &protocol.Message{Type: protocol.TypeSignal, To: ids.member, Data: randB64(protocol.MaxSignalBytes)}
	probe := newTestFile(1, 16)
	for offline := false; !offline; {
		a.send(sig)
		a.upload(probe, 0, 1)
		for m := a.next(); m.Code != protocol.CodeNoSuchFile; m = a.next() {
			switch {
			case m.Type == protocol.TypePresence && m.Event == protocol.EventOffline && m.Member == ids.member:
				offline = true
			case m.Code != protocol.CodeNoSuchMember:
				t.Fatalf("a got %+v", m)
			}
		}
	}
	b.expectPresence(protocol.EventOffline, ids.member)
	if n := e.srv.Stats().CutOff; n != 1 {
		t.Fatalf("cut off %d, want 1", n)
	}
	// The room goes on.
	b.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(10)})
	for {
		if m := a.next(); m.Type == protocol.TypeMsg {
			break
		}
	}
}

func TestBackPressure(t *testing.T) {
	const size = 10000
	capacity := int64(3*(size+protocol.ChunkUpHeader) + 200) // manifest + 3 chunks
	e := newEnv(t, func(c *Config, s *store.Config) {
		s.MaxBytes, s.MaxRoomBytes, s.MaxOriginBytes = capacity, capacity, capacity // every client is on 127.0.0.1
		c.PutTimeout = waitLimit
	})
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	f := newTestFile(10, size)
	a.announce(f)
	a.upload(f, 0, len(f.chunks)) // buffered by TCP while the server waits
	a.send(&protocol.Message{Type: protocol.TypeSignal, To: b.id.member, Data: randB64(8)})

	ids := []uint64{b.expectManifest(f, a.id.member).ID}
	for i := range 3 {
		ids = append(ids, b.expectChunk(f, i, a.id.member))
	}
	// The store is full: the uploader's reader waits, so its signal stays unread.
	b.quiet(300 * time.Millisecond)
	if st := e.st.Stats(); st.Bytes > capacity || st.Items != 4 {
		t.Fatalf("store %+v", st)
	}
	b.ack(ids...)
	// The rest arrive in order; a's signal, read after the last chunk was
	// stored, may overtake the last chunks (control messages go first).
	signal := false
	for i := 3; i < len(f.chunks); {
		fr := b.read()
		if !fr.binary {
			if m, err := protocol.Decode(fr.data); err != nil || m.Type != protocol.TypeSignal || signal {
				t.Fatalf("b got %s", fr.data)
			}
			signal = true
			continue
		}
		b.ack(b.checkChunk(fr, f, i, a.id.member))
		i++
	}
	if !signal {
		b.expect(protocol.TypeSignal)
	}
	a.expect(protocol.TypeProgress)
	a.expect(protocol.TypeDelivered)
	b.sync()
	e.storeEmpty()
}

func TestRelayFull(t *testing.T) {
	const size = 10000
	capacity := int64(size + protocol.ChunkUpHeader + 100)
	e := newEnv(t, func(c *Config, s *store.Config) {
		s.MaxBytes, s.MaxRoomBytes, s.MaxOriginBytes = capacity, capacity, capacity // every client is on 127.0.0.1
		c.PutTimeout = 200 * time.Millisecond
	})
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	f := newTestFile(3, size)
	a.announce(f)
	a.upload(f, 0, 2) // b never acks: the second chunk finds no room
	m := a.expectError(protocol.CodeRelayFull)
	if m.File != f.id {
		t.Fatalf("relay_full for %q", m.File)
	}
	a.sync() // still connected
}

func TestRecipientDropsMidTransfer(t *testing.T) {
	e := newEnv(t)
	_, a, b, c := room3(e)
	f := newTestFile(6, 1000)
	a.announce(f)
	a.upload(f, 0, len(f.chunks))

	c.expectManifest(f, a.id.member)
	c.expectChunk(f, 0, a.id.member)
	c.close() // gone mid-transfer, nothing acked

	b.recvFile(f, a.id.member)
	// a sees b's progress and delivery, and c going offline, in any order.
	var offline, delivered bool
	for !offline || !delivered {
		m := a.next()
		switch {
		case m.Type == protocol.TypePresence && m.Event == protocol.EventOffline && m.Member == c.id.member:
			offline = true
		case m.Type == protocol.TypeProgress && m.Member == b.id.member:
		case m.Type == protocol.TypeDelivered && m.Member == b.id.member:
			delivered = true
		default:
			t.Fatalf("a got %+v", m)
		}
	}
	if st := e.st.Stats(); st.Items != 7 {
		t.Fatalf("store %+v, want the manifest and 6 chunks owed to c", st)
	}

	e.clock.Advance(e.srv.cfg.Relay.TTL + time.Minute)
	e.srv.Sweep()
	e.storeEmpty()
	a.expectPresence(protocol.EventLeave, c.id.member)
	if m := a.expect(protocol.TypeUndeliverable); m.File != f.id || m.Member != c.id.member {
		t.Fatalf("undeliverable %+v", m)
	}
	if m := b.expect(protocol.TypePresence); m.Event == protocol.EventOffline { // unless recvFile skipped it
		b.expectPresence(protocol.EventLeave, c.id.member)
	} else if m.Event != protocol.EventLeave || m.Member != c.id.member {
		t.Fatalf("b got %+v", m)
	}
	if st := e.srv.Stats(); st.Members != 2 {
		t.Fatalf("stats %+v", st)
	}
}
