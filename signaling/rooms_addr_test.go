package signaling

import (
	"context"
	"net"
	"testing"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// TestRoomsPerAddress: one address can make only its share of rooms; the
// rooms it made can still be joined, another address can still make rooms,
// and a room deleted by the sweep frees its slot.
func TestRoomsPerAddress(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MaxRoomsPerAddr = 3; c.JoinRate = -1 })
	var made []roomCreds
	var members []*tclient
	for range 3 {
		rc := newCreds()
		members = append(members, e.join(rc, newIdent()))
		made = append(made, rc)
	}
	c := e.connect()
	c.send(joinMsg(newCreds(), newIdent()))
	c.expectError(protocol.CodeTooMany)
	c.expectClose(websocket.CloseTryAgainLater)
	e.waitGone(1)
	if n := e.limited(LimitRoomsPerAddr); n != 1 {
		t.Fatalf("rooms_per_addr refusals counted %d, want 1", n)
	}

	// A room already made is joined as usual, from the same address.
	e.join(made[0], newIdent())

	// Another address (127.0.0.2) still makes rooms.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext(ctx, network, addr)
	}}
	ws, _, err := d.Dial(e.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other := startClient(t, ws)
	other.send(joinMsg(newCreds(), newIdent()))
	other.expect(protocol.TypeWelcome)

	// The first address's member of made[2] leaves; the sweep deletes the
	// room and the address may make a new one.
	members[2].send(&protocol.Message{Type: protocol.TypeLeave})
	e.waitGone(1)
	e.srv.Sweep()
	e.join(newCreds(), newIdent())
}
