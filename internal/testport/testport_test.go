package testport

import (
	"net"
	"strconv"
	"testing"
)

// TestFree: the port is below the ephemeral range and can be bound for
// TCP and UDP; a port held by a listener is never returned.
func TestFree(t *testing.T) {
	high := ephemeralLow()
	for range 20 {
		p, err := Free("127.0.0.1", true)
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= high {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, high)
		}
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d not free for TCP: %v", p, err)
		}
		u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			l.Close()
			t.Fatalf("port %d not free for UDP: %v", p, err)
		}
		if free("127.0.0.1", p, false) {
			t.Errorf("port %d reported free while held", p)
		}
		l.Close()
		u.Close()
	}
}
