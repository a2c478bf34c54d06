package signaling

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"cloakroom/internal/auth"
	"cloakroom/internal/cluster"
	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// fakeBus is a Bus that records what the server publishes and sends.
type fakeBus struct {
	mu        sync.Mutex
	published chan *cluster.Event // every published event
	sent      []*cluster.Event
	sentTo    []string
}

func newFakeBus() *fakeBus { return &fakeBus{published: make(chan *cluster.Event, 1024)} }

func (b *fakeBus) Node() string { return "self" }

func (b *fakeBus) Publish(_ context.Context, batch []*cluster.Event) error {
	for _, ev := range batch {
		b.published <- ev
	}
	return nil
}

func (b *fakeBus) Send(node string, ev *cluster.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent, b.sentTo = append(b.sent, ev), append(b.sentTo, node)
	return nil
}

func (b *fakeBus) Announce(*cluster.Event) error { return nil }

func (b *fakeBus) Early(*cluster.Event) error { return nil }

func (b *fakeBus) Register(_ context.Context, _, hash string) (string, error) { return hash, nil }

func (b *fakeBus) Snapshot(context.Context, string) (*cluster.Event, error) { return nil, nil }

// next returns the next published event of type typ (others are skipped).
func (b *fakeBus) next(t *testing.T, typ string) *cluster.Event {
	t.Helper()
	for ev := range b.published {
		if ev.Type == typ {
			return ev
		}
	}
	t.Fatal("bus closed")
	return nil
}

func withBus(b Bus) envOpt { return func(c *Config, _ *store.Config) { c.Bus = b } }

// remoteJoin is the presence event another node publishes for id.
func remoteJoin(rc roomCreds, id ident, node string) *cluster.Event {
	v, _ := protocol.DecodeB64(rc.verifier)
	h := auth.HashVerifier(v)
	return &cluster.Event{Type: cluster.TypePresence, Node: node, Room: rc.room, Event: protocol.EventJoin,
		Member: id.member, Pub: id.pub, MAC: id.mac, Hash: hex.EncodeToString(h[:])}
}

// TestClusterRemoteMember: a member on another node is seen joining,
// receives signals through the bus, sends signals and relay items that
// reach the local member, whose ack goes back out with the item's key;
// when its node is gone it is seen offline.
func TestClusterRemoteMember(t *testing.T) {
	bus := newFakeBus()
	e := newEnv(t, withBus(bus))
	rc, a, b := newCreds(), newIdent(), newIdent()
	ca := e.join(rc, a)
	if ev := bus.next(t, cluster.TypePresence); ev.Member != a.member || ev.Event != protocol.EventJoin || ev.Pub != a.pub {
		t.Fatalf("published %+v, want a's join", ev)
	}
	e.srv.Apply(remoteJoin(rc, b, "other"))
	ca.expectPresence(protocol.EventJoin, b.member)

	ca.send(&protocol.Message{Type: protocol.TypeSignal, To: b.member, Data: randB64(40)})
	ca.sync()
	bus.mu.Lock()
	if len(bus.sentTo) != 1 || bus.sentTo[0] != "other" || bus.sent[0].To != b.member || bus.sent[0].Pub != a.pub {
		t.Fatalf("sent %v %+v, want a signal for b to node other with a's announcement", bus.sentTo, bus.sent)
	}
	bus.mu.Unlock()

	data := randB64(32)
	e.srv.Apply(&cluster.Event{Type: cluster.TypeSignal, Node: "other", Room: rc.room, Member: b.member, To: a.member, Data: []byte(data)})
	if m := ca.expect(protocol.TypeSignal); m.From != b.member || m.Data != data {
		t.Fatalf("signal %+v, want b's", m)
	}

	e.srv.Apply(&cluster.Event{Type: cluster.TypeItem, Node: "other", Room: rc.room, Key: "other/7", Kind: 1,
		Sender: b.member, Owed: []string{a.member}, Data: randBytes(100)})
	m := ca.expect(protocol.TypeMsg)
	if m.From != b.member {
		t.Fatalf("msg %+v, want from b", m)
	}
	ca.ack(m.ID)
	if ev := bus.next(t, cluster.TypeAck); len(ev.Keys) != 1 || ev.Keys[0] != "other/7" || len(ev.Members) != 1 || ev.Members[0] != a.member {
		t.Fatalf("ack event %+v, want a's ack of other/7", ev)
	}

	e.srv.NodeGone("other")
	ca.expectPresence(protocol.EventOffline, b.member)
}

// TestClusterRefusesOtherVerifier: another node announcing a member of a
// known room with another verifier is ignored.
func TestClusterRefusesOtherVerifier(t *testing.T) {
	bus := newFakeBus()
	e := newEnv(t, withBus(bus))
	rc, a, b := newCreds(), newIdent(), newIdent()
	ca := e.join(rc, a)
	forged := rc
	forged.verifier = randB64(protocol.VerifierLen)
	e.srv.Apply(remoteJoin(forged, b, "other"))
	e.srv.Apply(remoteJoin(rc, newIdent(), "other")) // a real one after it
	m := ca.expect(protocol.TypePresence)
	if m.Member == b.member {
		t.Fatalf("a member with another verifier was admitted: %+v", m)
	}
}

// FuzzApply: no event from another node, however malformed, panics the
// server or reaches a client unchecked.
func FuzzApply(f *testing.F) {
	rc, id := newCreds(), newIdent()
	for _, ev := range []*cluster.Event{
		remoteJoin(rc, id, "other"),
		{Type: cluster.TypeItem, Node: "other", Room: rc.room, Key: "other/1", Kind: 2, Sender: id.member, Owed: []string{uuid.NewString()}, Data: []byte{1, 2, 3}},
		{Type: cluster.TypeAck, Node: "other", Room: rc.room, Member: id.member, Keys: []string{"other/1"}, Indexes: []uint32{1}},
		{Type: cluster.TypeAck, Node: "other", Rooms: []string{rc.room, rc.room}, Members: []string{id.member, id.member}, Keys: []string{"other/1", "other/2"}},
		{Type: cluster.TypeSignal, Node: "other", Room: rc.room, Member: id.member, To: id.member, Data: []byte("x")},
		{Type: cluster.TypePresence, Node: "other", Room: rc.room, Event: protocol.EventLeave, Member: id.member},
		{Type: cluster.TypeGone, Node: "other"},
	} {
		b, err := cluster.Encode(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	srv, err := New(Config{Bus: newFakeBus(), Logger: testLogger()})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := cluster.Decode(b)
		if err != nil {
			return
		}
		srv.Apply(ev)
		ev.Early = true // the same bytes by the early path
		srv.Apply(ev)
		if snap := srv.SnapshotOf(ev.Room); snap != nil {
			srv.applySnapshot(snap, [32]byte{})
		}
	})
}

// TestClusterStalePresence: a presence event older than what the node knows
// of the member (the stream delivering a dead node's event after the member
// came back elsewhere) changes nothing.
func TestClusterStalePresence(t *testing.T) {
	e := newEnv(t, withBus(newFakeBus()))
	rc, a, b := newCreds(), newIdent(), newIdent()
	ca := e.join(rc, a)
	now := e.clock.Now().UnixNano()
	fresh := remoteJoin(rc, b, "new")
	fresh.Stamp = now
	e.srv.Apply(fresh)
	ca.expectPresence(protocol.EventJoin, b.member)
	old := remoteJoin(rc, b, "dead")
	old.Event, old.Stamp = protocol.EventOnline, now-int64(time.Second)
	e.srv.Apply(old)
	e.srv.NodeGone("dead") // b is not on it
	ca.sync()
	e.srv.NodeGone("new")
	ca.expectPresence(protocol.EventOffline, b.member)
}

// TestClusterEarlyItemOnce: a chat item that comes both early (core NATS)
// and through the stream is delivered once, whichever copy comes first;
// an ack made on a third node before this node had the item is kept and
// applied when the item arrives (nothing is left owed).
func TestClusterEarlyItemOnce(t *testing.T) {
	e := newEnv(t, withBus(newFakeBus()))
	rc, a, b, c := newCreds(), newIdent(), newIdent(), newIdent()
	ca := e.join(rc, a)
	e.srv.Apply(remoteJoin(rc, b, "other"))
	ca.expectPresence(protocol.EventJoin, b.member)
	item := func(seq uint64, early bool, owed ...string) *cluster.Event {
		return &cluster.Event{Type: cluster.TypeItem, Node: "other", Seq: seq, Room: rc.room, Key: fmt.Sprintf("other/%d", seq),
			Kind: uint8(store.KindEnvelope), Sender: b.member, Owed: owed, Data: randBytes(64), Early: early}
	}
	// Early first, then the stream's copy; then the stream first, then a
	// late early copy (below the stream's mark).
	for _, order := range [][2]bool{{true, false}, {false, true}} {
		seq := uint64(10)
		if !order[0] {
			seq = 20
		}
		e.srv.Apply(item(seq, order[0], a.member))
		m := ca.expect(protocol.TypeMsg)
		ca.ack(m.ID)
		ca.sync()
		e.srv.Sweep() // the freed item's key is forgotten: only the tracker knows it came
		e.srv.Apply(item(seq, order[1], a.member))
		ca.sync()
		if st := e.srv.store.Stats(); st.Items != 0 {
			t.Fatalf("seq %d: the store holds %d items after the one ack, want 0 (the second copy was stored again)", seq, st.Items)
		}
	}
	ca.sync()
	select {
	case f := <-ca.in:
		t.Fatalf("a got another frame %q: an item was delivered twice", f.data)
	default:
	}
	// c, on a third node, acks item 30 (it had it early) before this node
	// gets it from the stream: owed to c only, it is freed on arrival.
	e.srv.Apply(remoteJoin(rc, c, "third"))
	ca.expectPresence(protocol.EventJoin, c.member)
	e.srv.Apply(&cluster.Event{Type: cluster.TypeAck, Node: "third", Room: rc.room, Member: c.member, Keys: []string{"other/30"}})
	e.srv.Apply(item(30, false, c.member))
	if st := e.srv.store.Stats(); st.Items != 0 {
		t.Fatalf("the store holds %d items, want 0: the early ack was lost", st.Items)
	}
}

// TestClusterAcksOfSeveralRooms: the acks of a batch, of several rooms and
// members, go out as one event after the items they ack, and such an event
// from another node frees the copies of every room.
func TestClusterAcksOfSeveralRooms(t *testing.T) {
	item := func(room string) *cluster.Event {
		return &cluster.Event{Type: cluster.TypeItem, Node: "n", Room: room, Key: "n/" + room}
	}
	ack := func(room, member string) *cluster.Event {
		return &cluster.Event{Type: cluster.TypeAck, Node: "n", Seq: 9, Room: room, Member: member, Keys: []string{"k" + room}, Indexes: []uint32{3}}
	}
	out := coalesceAcks([]*cluster.Event{ack("r1", "m1"), item("r2"), ack("r2", "m2"), item("r3")})
	if len(out) != 3 || out[0].Type != cluster.TypeItem || out[1].Type != cluster.TypeAck || out[2].Type != cluster.TypeItem {
		t.Fatalf("coalesced %d events %+v, want item, one ack, item", len(out), out)
	}
	if m := out[1]; !slices.Equal(m.Rooms, []string{"r1", "r2"}) || !slices.Equal(m.Members, []string{"m1", "m2"}) ||
		!slices.Equal(m.Keys, []string{"kr1", "kr2"}) || !slices.Equal(m.Indexes, []uint32{3, 3}) || m.Room != "" {
		t.Fatalf("merged ack %+v", m)
	}

	bus := newFakeBus()
	e := newEnv(t, withBus(bus))
	var keys, rooms, members []string
	for range 2 {
		rc, a, b := newCreds(), newIdent(), newIdent()
		ca := e.join(rc, a)
		e.srv.Apply(remoteJoin(rc, b, "other"))
		ca.expectPresence(protocol.EventJoin, b.member)
		ca.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(40)})
		ev := bus.next(t, cluster.TypeItem)
		keys, rooms, members = append(keys, ev.Key), append(rooms, rc.room), append(members, b.member)
	}
	if st := e.srv.store.Stats(); st.Items != 2 {
		t.Fatalf("store holds %d items, want the 2 messages", st.Items)
	}
	e.srv.Apply(&cluster.Event{Type: cluster.TypeAck, Node: "other", Keys: keys, Rooms: rooms, Members: members})
	if st := e.srv.store.Stats(); st.Items != 0 {
		t.Fatalf("store holds %d items after one ack event for both rooms, want 0", st.Items)
	}
}

// TestClusterNodeGoneGrace: the members of a vanished node show offline at
// once, but the relay store counts them online (their chunks not
// evictable) until nodeGoneGrace has passed without them coming back; one
// that comes back on another node within it stays online.
func TestClusterNodeGoneGrace(t *testing.T) {
	bus := newFakeBus()
	e := newEnv(t, withBus(bus))
	rc, a, b, c := newCreds(), newIdent(), newIdent(), newIdent()
	ca := e.join(rc, a)
	e.srv.Apply(remoteJoin(rc, b, "dead"))
	ca.expectPresence(protocol.EventJoin, b.member)
	e.srv.Apply(remoteJoin(rc, c, "dead"))
	ca.expectPresence(protocol.EventJoin, c.member)
	e.srv.NodeGone("dead")
	off := map[string]bool{}
	for range 2 {
		if m := ca.expect(protocol.TypePresence); m.Event == protocol.EventOffline {
			off[m.Member] = true
		}
	}
	if !off[b.member] || !off[c.member] {
		t.Fatalf("offline presences %v, want b and c", off)
	}
	for _, id := range []ident{b, c} {
		if on, known := e.srv.store.Online(rc.room, id.member); !on || !known {
			t.Fatalf("right after its node vanished the store counts %s online=%v known=%v, want online", id.member[:8], on, known)
		}
	}
	e.clock.Advance(10 * time.Second)
	back := remoteJoin(rc, c, "new")
	back.Event, back.Stamp = protocol.EventOnline, e.clock.Now().UnixNano()
	e.srv.Apply(back)
	e.clock.Advance(nodeGoneGrace)
	e.srv.Sweep()
	if on, _ := e.srv.store.Online(rc.room, b.member); on {
		t.Fatal("a member of the vanished node still counts online after the grace")
	}
	if on, _ := e.srv.store.Online(rc.room, c.member); !on {
		t.Fatal("a member back on another node counts offline")
	}
}
