package signaling

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// joinFrom joins rc as id from local address ip (127.0.0.0/8 on loopback).
func (e *testEnv) joinFrom(ip net.IP, rc roomCreds, id ident) *tclient {
	e.t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext(ctx, network, addr)
	}}
	ws, _, err := d.Dial(e.wsURL(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := startClient(e.t, ws)
	c.id = id
	c.send(joinMsg(rc, id))
	c.welcome = c.expect(protocol.TypeWelcome)
	return c
}

// TestRelayFloodFromOneAddress: one address makes two rooms, each with an
// uploader and a member that never acks, and uploads until the relay
// refuses it. Its uploads stop at its quota (a quarter of the relay); a
// third room, from another address, moves a file larger than the whole
// relay through it, and chat, without a single relay_full.
func TestRelayFloodFromOneAddress(t *testing.T) {
	const relayCap = 8 << 20
	e := newEnv(t, func(c *Config, s *store.Config) {
		s.MaxBytes = relayCap
		c.PutTimeout = 100 * time.Millisecond
	})
	attacker := net.IPv4(127, 0, 0, 3)
	for _, n := range []int{80, 8} { // 4.6 MiB, then more once the quota is reached
		rc := newCreds()
		up := e.joinFrom(attacker, rc, newIdent())
		e.joinFrom(attacker, rc, newIdent()) // joined, never reads, never acks
		up.expect(protocol.TypePresence)
		f := newTestFile(n, 60000)
		up.announce(f)
		up.upload(f, 0, len(f.chunks))
		up.expectError(protocol.CodeRelayFull)
	}
	if st := e.st.Stats(); st.Bytes > relayCap/4 || st.Bytes < relayCap/8 {
		t.Fatalf("the flooding address holds %d bytes of a %d-byte relay, want about a quarter", st.Bytes, relayCap)
	}

	rc := newCreds()
	a := e.join(rc, newIdent())
	b := e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	f := newTestFile(200, 60000) // 11.4 MiB through an 8 MiB relay
	a.announce(f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range f.chunks {
			_ = a.ws.SetWriteDeadline(time.Now().Add(waitLimit))
			if err := a.ws.WriteMessage(websocket.BinaryMessage, f.chunks[i].AppendUp(nil)); err != nil {
				t.Errorf("upload chunk %d: %v", i, err)
				return
			}
		}
	}()
	b.recvFile(f, a.id.member)
	<-done
	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(64)})
	m := b.expect(protocol.TypeMsg)
	b.ack(m.ID)
	for {
		m := a.next()
		if m.Type == protocol.TypeDelivered {
			break
		}
		if m.Type == protocol.TypeError {
			t.Fatalf("the third room's sender got %+v", m)
		}
	}
}
