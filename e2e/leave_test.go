package e2e

import (
	"slices"
	"testing"

	"cloakroom/internal/protocol"
)

// TestLeaveDoesNotRejoin: Leave is for good. The server answers a leave by
// closing the connection; the client must not take that for a lost
// connection and join again (the other members would see the member who
// left come back, and the relay would owe it items until they expire).
// Leaving right after receiving a file peer to peer is the case that shows
// it: Close then first waits (briefly) for the sending peer to end its
// session, and meanwhile the read loop sees the server's close.
func TestLeaveDoesNotRejoin(t *testing.T) {
	const rounds = 20
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	for i := range rounds {
		link := newSecret(t).Link(ts.URL)
		alice := dialPeer(ctx, t, link, "alice", withTransport(protocol.TransportP2P))
		carol := dialPeer(ctx, t, link, "carol", withTransport(protocol.TransportP2P))
		meshOnline(ctx, t, alice, carol)
		path, sum := makeFile(t, t.TempDir(), "x.bin", 1000, "")
		if rep, err := alice.SendFile(ctx, path); err != nil {
			t.Fatalf("round %d: SendFile: %v (%+v)", i, err, rep)
		}
		if f := nextFile(ctx, t, carol); f.Err != nil || f.SHA256 != sum {
			t.Fatalf("round %d: carol received %+v", i, f)
		}
		if err := carol.Leave(); err != nil {
			t.Fatalf("round %d: Leave: %v", i, err)
		}
		// Leave has returned, so the client has stopped: every state it
		// went through is recorded.
		switch st := carol.states.snapshot(); {
		case slices.Contains(st, "restored"):
			t.Fatalf("round %d: after Leave the client joined the room again (states %v)", i, st)
		case slices.Contains(st, "reconnecting"):
			// It tried, and Close stopped it in time; not harmful this time.
			t.Logf("round %d: after Leave the client tried to reconnect (states %v)", i, st)
		}
		_ = alice.Close()
	}
}
