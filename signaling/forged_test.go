package signaling

import (
	"testing"

	"cloakroom/internal/protocol"
)

// TestForgedAcks: acks for items owed to another member of the room, or
// living in another room, delete nothing and report no progress.
func TestForgedAcks(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)

	// A file owed to b only (c joins after it started), and a chat.
	f := newTestFile(3, 1000)
	a.announce(f)
	a.upload(f, 0, len(f.chunks))
	ids := []uint64{b.expectManifest(f, a.id.member).ID}
	for i := range f.chunks {
		ids = append(ids, b.expectChunk(f, i, a.id.member))
	}
	c := e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, c.id.member)
	b.expectPresence(protocol.EventJoin, c.id.member)
	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(100)}) // owed to b and c
	chat := b.expect(protocol.TypeMsg).ID
	if got := c.expect(protocol.TypeMsg).ID; got != chat {
		t.Fatalf("c got item %d, b %d", got, chat)
	}
	c.ack(chat) // c's own: fine
	c.sync()
	before := e.st.Stats()

	// Another room's member, the sender, and a member not owed the file ack
	// everything b holds.
	x := e.join(newCreds(), newIdent())
	all := append([]uint64{chat}, ids...)
	for _, forger := range []*tclient{x, a, c} {
		forger.ack(all...)
		forger.ack(1, 2, 3, 1<<40) // and ids that may not exist
		forger.sync()
	}
	if got := e.st.Stats(); got != before {
		t.Fatalf("store after forged acks %+v, before %+v", got, before)
	}

	// b's own acks still work, and a hears of them first: any progress
	// from a forged ack would have been queued before.
	b.ack(all...)
	for _, typ := range []string{protocol.TypeProgress, protocol.TypeDelivered} {
		if m := a.expect(typ); m.Member != b.id.member || m.File != f.id {
			t.Fatalf("%s %+v, want it for b's copy of the file", typ, m)
		}
	}
	b.sync()
	e.storeEmpty()
}
