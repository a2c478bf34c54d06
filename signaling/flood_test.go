package signaling

import (
	"context"
	"net"
	"sync"
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

// TestRelayFloodFromOneAddress: one address makes two rooms, each with four
// uploaders and a member that never acks, and keeps uploading files (more
// than the whole default 256 MiB relay, and enough members that the
// per-member and per-room caps alone would let it fill the relay). Its uploads stop at its quota (a
// quarter of the relay); meanwhile a third room, from another address,
// moves a 64 MiB file through the relay, and chat, without a relay_full.
func TestRelayFloodFromOneAddress(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.PutTimeout = 200 * time.Millisecond })
	attacker := net.IPv4(127, 0, 0, 3)
	var flooders []*tclient
	for range 2 {
		rc := newCreds()
		for range 4 {
			flooders = append(flooders, e.joinFrom(attacker, rc, newIdent()))
		}
		e.joinFrom(attacker, rc, newIdent()) // joined, never acks
	}
	// Each flooder writes 40 MiB (320 MiB in all) from its own goroutine,
	// raw, and stops at the first write error (the test ending).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, up := range flooders {
		f := newTestFile(700, 60000)
		up.send(&protocol.Message{Type: protocol.TypeFile, File: f.id, Chunks: uint32(len(f.chunks)), Data: randB64(64)})
		wg.Go(func() {
			for i := range f.chunks {
				select {
				case <-stop:
					return
				default:
				}
				_ = up.ws.SetWriteDeadline(time.Now().Add(2 * waitLimit))
				if up.ws.WriteMessage(websocket.BinaryMessage, f.chunks[i].AppendUp(nil)) != nil {
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	// The flood has taken its share of the relay.
	deadline := time.Now().Add(waitLimit)
	for e.st.Stats().Bytes < store.DefaultMaxBytes/4-int64(protocol.MaxFrameBytes) {
		if time.Now().After(deadline) {
			t.Fatalf("the flood holds only %d bytes", e.st.Stats().Bytes)
		}
		time.Sleep(10 * time.Millisecond)
	}

	rc := newCreds()
	a := e.join(rc, newIdent())
	b := e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	f := newTestFile(1119, 60000) // 64 MiB
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
	if held := e.st.Stats().Bytes; held > store.DefaultMaxBytes/4+int64(protocol.MaxFrameBytes) {
		t.Fatalf("the flooding address holds %d bytes of the %d-byte relay, want at most a quarter", held, store.DefaultMaxBytes)
	}
}
