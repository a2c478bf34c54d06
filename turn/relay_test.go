package turn

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// testGen is a relay generator on 127.0.0.1 like the server's.
func testGen() *relayGen {
	lo := net.IPv4(127, 0, 0, 1).To4()
	return &relayGen{bindIP: lo, announce: lo, min: DefaultRelayPortMin, max: DefaultRelayPortMax,
		bytes: new(atomic.Uint64), dropped: new(atomic.Uint64), hub: relayHub{announce: lo}}
}

func allocateRelay(t *testing.T, g *relayGen) (net.PacketConn, *net.UDPAddr) {
	t.Helper()
	c, a, err := g.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, a.(*net.UDPAddr)
}

// readOne reads one datagram from c, failing after a while.
func readOne(t *testing.T, c net.PacketConn) (string, net.Addr) {
	t.Helper()
	type result struct {
		b    []byte
		from net.Addr
		err  error
	}
	got := make(chan result, 1)
	go func() {
		buf := make([]byte, 1600)
		n, from, err := c.ReadFrom(buf)
		got <- result{buf[:n], from, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("read: %v", r.err)
		}
		return string(r.b), r.from
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram")
	}
	return "", nil
}

// TestRelayHandOver: a datagram from one relay socket to another of the
// same server arrives in memory, from the sender's announced address, and
// counts as relayed on both sides; one from the network still arrives.
func TestRelayHandOver(t *testing.T) {
	g := testGen()
	a, aAddr := allocateRelay(t, g)
	b, bAddr := allocateRelay(t, g)
	if _, err := a.WriteTo([]byte("hello"), bAddr); err != nil {
		t.Fatal(err)
	}
	if msg, from := readOne(t, b); msg != "hello" || from.String() != aAddr.String() {
		t.Fatalf("got %q from %v, want hello from %v", msg, from, aAddr)
	}
	if got := g.bytes.Load(); got != 10 {
		t.Fatalf("bytes %d, want 10 (5 out, 5 in)", got)
	}

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.WriteTo([]byte("from the network"), bAddr); err != nil {
		t.Fatal(err)
	}
	if msg, from := readOne(t, b); msg != "from the network" || from.String() != peer.LocalAddr().String() {
		t.Fatalf("got %q from %v", msg, from)
	}
	if _, err := b.WriteTo([]byte("back"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "back" {
		t.Fatalf("peer got %q, %v", buf[:n], err)
	}
}

// TestRelayHandOverFullAndClosed: a full queue drops (and counts) like a
// full socket buffer; a closed relay socket leaves the hub, takes nothing
// more and fails its reader.
func TestRelayHandOverFullAndClosed(t *testing.T) {
	g := testGen()
	a, _ := allocateRelay(t, g)
	b, bAddr := allocateRelay(t, g)
	for range relayQueue + 10 {
		if _, err := a.WriteTo([]byte("x"), bAddr); err != nil {
			t.Fatal(err)
		}
	}
	if got := g.dropped.Load(); got != 10 {
		t.Fatalf("dropped %d, want 10", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if g.hub.local(bAddr) != nil {
		t.Fatal("closed relay socket still in the hub")
	}
	if _, _, err := b.ReadFrom(make([]byte, 16)); !errors.Is(err, net.ErrClosed) {
		// Queued datagrams may come first; the error must come eventually.
		for err == nil {
			_, _, err = b.ReadFrom(make([]byte, 16))
		}
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v, want net.ErrClosed", err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
