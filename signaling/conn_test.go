package signaling

import (
	"bytes"
	"context"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

func TestSignal(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	data := randB64(300)
	a.send(&protocol.Message{Type: protocol.TypeSignal, To: b.id.member, Data: data})
	if m := b.expect(protocol.TypeSignal); m.From != a.id.member || m.Data != data || m.To != "" {
		t.Fatalf("signal %+v", m)
	}
	other := e.join(newCreds(), newIdent()) // online, but in another room
	a.send(&protocol.Message{Type: protocol.TypeSignal, To: other.id.member, Data: data})
	a.expectError(protocol.CodeNoSuchMember)
	b.close()
	a.expectPresence(protocol.EventOffline, b.id.member)
	a.send(&protocol.Message{Type: protocol.TypeSignal, To: b.id.member, Data: data})
	a.expectError(protocol.CodeNoSuchMember)
}

func TestBadRequests(t *testing.T) {
	var (
		mu     sync.Mutex
		tapped [][]byte
	)
	e := newEnv(t, func(c *Config, _ *store.Config) {
		c.OnFrame = func(_ bool, d []byte) {
			mu.Lock()
			defer mu.Unlock()
			tapped = append(tapped, d)
		}
	})
	a := e.join(newCreds(), newIdent())
	tests := []struct {
		name string
		mt   int
		data []byte
	}{
		{"malformed json", websocket.TextMessage, []byte("{")},
		{"unknown field", websocket.TextMessage, []byte(`{"t":"leave","x":1}`)},
		{"server type", websocket.TextMessage, []byte(`{"t":"file_ok","file":"` + newIdent().member + `"}`)},
		{"msg with id", websocket.TextMessage, []byte(`{"t":"msg","id":5,"data":"AAAA"}`)},
		{"second join", websocket.TextMessage, mustJSON(t, joinMsg(newCreds(), newIdent()))},
		{"ChunkDown kind", websocket.BinaryMessage, append([]byte{1, 2}, make([]byte, 60)...)},
		{"unknown kind", websocket.BinaryMessage, []byte{1, 9, 0}},
		{"bad version", websocket.BinaryMessage, []byte{7, 1}},
		{"short ChunkUp", websocket.BinaryMessage, []byte{1, 1, 0, 0}},
	}
	for _, tt := range tests {
		a.sendRaw(tt.mt, tt.data)
		a.expectError(protocol.CodeBadRequest)
	}
	a.sync() // still connected
	mu.Lock()
	defer mu.Unlock()
	if len(tapped) != len(tests)+2 || !bytes.Equal(tapped[1], tests[0].data) {
		t.Fatalf("tap saw %d frames", len(tapped))
	}

}

func TestTooManyBadRequests(t *testing.T) {
	e := newEnv(t)
	a := e.join(newCreds(), newIdent())
	for range maxBadRequests {
		a.sendRaw(websocket.TextMessage, []byte("{"))
	}
	// Errors still queued may be dropped; the last one and the close are sent.
	for {
		f := <-a.in
		if f.err != nil {
			if !websocket.IsCloseError(f.err, websocket.ClosePolicyViolation) {
				t.Fatalf("ended with %v", f.err)
			}
			break
		}
		if m, err := protocol.Decode(f.data); err != nil || m.Code != protocol.CodeBadRequest {
			t.Fatalf("got %s", f.data)
		}
	}
}

func mustJSON(t *testing.T, m *protocol.Message) []byte {
	b, err := protocol.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOversizeFrame(t *testing.T) {
	e := newEnv(t)
	a := e.join(newCreds(), newIdent())
	go func() { _ = a.ws.WriteMessage(websocket.BinaryMessage, make([]byte, 10<<20)) }()
	a.expectClose(websocket.CloseMessageTooBig)
}

func TestLeave(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	f := newTestFile(4, 50)
	a.announce(f)
	a.upload(f, 0, 2)
	b.expectManifest(f, a.id.member)
	b.expectChunk(f, 0, a.id.member)
	b.expectChunk(f, 1, a.id.member)
	b.send(&protocol.Message{Type: protocol.TypeLeave})
	b.expectClose(websocket.CloseNormalClosure)
	a.expectPresence(protocol.EventLeave, b.id.member)
	if m := a.expect(protocol.TypeUndeliverable); m.Member != b.id.member || m.File != f.id {
		t.Fatalf("undeliverable %+v", m)
	}
	e.storeEmpty()
	e.waitGone(1)
	if st := e.srv.Stats(); st.Members != 1 || st.Online != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEvictWhileOffline(t *testing.T) {
	const size = 5000
	capacity := int64(4*(size+protocol.ChunkUpHeader) + 200)
	e := newEnv(t, func(_ *Config, s *store.Config) {
		s.MaxBytes, s.MaxRoomBytes, s.MaxOriginBytes = capacity, capacity, capacity
	})
	_, a, b, c := room3(e)
	f := newTestFile(8, size)
	a.announce(f) // owed to b and c
	c.close()
	a.expectPresence(protocol.EventOffline, c.id.member)

	a.upload(f, 0, len(f.chunks))
	b.recvFile(f, a.id.member)
	// Chunks acked by b were owed only to offline c: evicted for space.
	var undeliverable, delivered bool
	for !undeliverable || !delivered {
		m := a.next()
		switch {
		case m.Type == protocol.TypeUndeliverable && m.Member == c.id.member && !undeliverable:
			undeliverable = true
		case m.Type == protocol.TypeDelivered && m.Member == b.id.member:
			delivered = true
		case m.Type == protocol.TypeProgress && m.Member == b.id.member:
		default:
			t.Fatalf("a got %+v", m)
		}
	}
}

func TestCloseAndLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("run", func(t *testing.T) {
		e := newEnv(t)
		rc := newCreds()
		a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
		a.expectPresence(protocol.EventJoin, b.id.member)
		f := newTestFile(3, 100)
		a.announce(f)
		a.upload(f, 0, 3) // b holds unacked items in flight
		b.expectManifest(f, a.id.member)
		idle := e.connect() // not joined yet

		if err := e.srv.Close(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*tclient{a, b, idle} {
			for {
				f := c.read()
				if !f.binary {
					if m, _ := protocol.Decode(f.data); m != nil && m.Code == protocol.CodeGoingAway {
						break
					}
				}
			}
			c.expectClose(websocket.CloseGoingAway)
		}
		if st := e.srv.Stats(); st.Conns != 0 || st.Online != 0 {
			t.Fatalf("after Close: %+v", st)
		}
		if _, _, err := e.dial(nil); err == nil {
			t.Fatal("dial after Close succeeded")
		}
		_ = e.srv.Close()
	})
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // goroutines exiting have no event to wait on
	}
}

func TestSpans(t *testing.T) {
	var s spans
	order := []uint32{5, 3, 4, 0, 9, 1, 2, 7, 8, 6, 4, 0, 9}
	var fresh []uint32
	for _, i := range order {
		if s.add(i) {
			fresh = append(fresh, i)
		}
	}
	if !slices.Equal(fresh, order[:10]) {
		t.Fatalf("new: %v", fresh)
	}
	if len(s) != 1 || s[0] != (span{0, 10}) {
		t.Fatalf("spans %v", s)
	}

	// Against a map, in random order.
	s = nil
	seen := map[uint32]bool{}
	for range 5000 {
		i := uint32(mrand.IntN(300))
		if s.add(i) == seen[i] {
			t.Fatalf("add(%d) disagrees with the map", i)
		}
		seen[i] = true
	}
	for k := 1; k < len(s); k++ {
		if s[k-1].hi >= s[k].lo || s[k].lo >= s[k].hi {
			t.Fatalf("spans not sorted, disjoint and non-adjacent: %v", s)
		}
	}
}

func TestSweepDropsEmptyRooms(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a := e.join(rc, newIdent())
	a.close()
	e.waitGone(1)
	e.srv.Sweep()
	if st := e.srv.Stats(); st.Rooms != 1 || st.Members != 1 {
		t.Fatalf("before TTL: %+v", st)
	}
	e.clock.Advance(e.srv.cfg.Relay.TTL + time.Second)
	e.srv.Sweep()
	if st := e.srv.Stats(); st.Rooms != 0 || st.Members != 0 {
		t.Fatalf("after TTL: %+v", st)
	}
	// The room id is free again: any verifier registers it.
	e.join(roomCreds{room: rc.room, verifier: randB64(protocol.VerifierLen)}, newIdent())
}

func TestRunCleanupStops(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.srv.runCleanup(ctx, time.Millisecond) }()
	cancel()
	<-done
	done = make(chan struct{})
	go func() { defer close(done); e.srv.runCleanup(context.Background(), time.Hour) }()
	_ = e.srv.Close()
	<-done
}

// TestStalledMemberDoesNotHoldTheRelay: a member that stays online but
// acks nothing counts as offline for the relay once AckStall passes, so
// the chunks owed only to it are evicted when an upload needs the space;
// the sender hears it will not get the file, the member that acks gets
// everything.
func TestStalledMemberDoesNotHoldTheRelay(t *testing.T) {
	const size = 5000
	capacity := int64(4*(size+protocol.ChunkUpHeader) + 200)
	e := newEnv(t, func(c *Config, s *store.Config) {
		s.MaxBytes, s.MaxRoomBytes, s.MaxOriginBytes = capacity, capacity, capacity
		c.PutTimeout = waitLimit
	})
	_, a, b, c := room3(e)
	f := newTestFile(8, size)
	a.announce(f) // owed to b and c; c reads but never acks
	a.upload(f, 0, len(f.chunks))
	// b takes the first chunks; then the store is full of chunks owed only
	// to silent c, and a's upload waits.
	b.ack(b.expectManifest(f, a.id.member).ID)
	for i := range 4 {
		b.ack(b.expectChunk(f, i, a.id.member))
	}
	b.sync()                         // the server has b's acks: only c is silent
	e.clock.Advance(2 * time.Minute) // past AckStall (default 1 min)
	e.srv.Sweep()
	for i := 4; i < len(f.chunks); i++ {
		b.ack(b.expectChunk(f, i, a.id.member))
	}
	var undeliverable, delivered bool
	for !undeliverable || !delivered {
		m := a.next()
		switch {
		case m.Type == protocol.TypeUndeliverable && m.Member == c.id.member && !undeliverable:
			undeliverable = true
		case m.Type == protocol.TypeDelivered && m.Member == b.id.member:
			delivered = true
		case m.Type == protocol.TypeProgress:
		default:
			t.Fatalf("a got %+v", m)
		}
	}
}
