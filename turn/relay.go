package turn

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
)

// sockBuf is the read and write buffer of the UDP listener and of every
// relay socket. Without it the kernel drops packets under load on loopback
// (FACTS.md: throughput swung 45–104 MB/s); Linux caps it at
// net.core.rmem_max / wmem_max.
const sockBuf = 4 << 20

// relayTries bounds the random ports tried for one relay socket.
const relayTries = 32

// relayGen is the RelayAddressGenerator of every listener: a UDP socket on a
// random port of [min, max], bound on bindIP and announced as announce.
type relayGen struct {
	bindIP   net.IP // the PublicIP when it is local, else 0.0.0.0
	announce net.IP // the PublicIP
	min, max int
	bytes    *atomic.Uint64 // payload bytes relayed, both directions
}

func (g *relayGen) Validate() error {
	if g.announce == nil || g.min < 1 || g.min > g.max || g.max > 65535 {
		return ErrPortRange
	}
	return nil
}

// AllocatePacketConn binds a relay socket. pion asks with port 0, or with the
// port of an EVEN-PORT reservation it made through this generator.
func (g *relayGen) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	if port != 0 {
		return g.listen(network, port)
	}
	var err error
	for range relayTries {
		p := g.min + rand.IntN(g.max-g.min+1)
		var c net.PacketConn
		var a net.Addr
		if c, a, err = g.listen(network, p); err == nil {
			return c, a, nil
		}
	}
	return nil, nil, fmt.Errorf("turn: no free relay port in %d-%d: %w", g.min, g.max, err)
}

func (g *relayGen) listen(network string, port int) (net.PacketConn, net.Addr, error) {
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: g.bindIP, Port: port})
	if err != nil {
		return nil, nil, err
	}
	tuneUDP(c)
	relay := &net.UDPAddr{IP: g.announce, Port: c.LocalAddr().(*net.UDPAddr).Port}
	return &relayConn{UDPConn: c, bytes: g.bytes}, relay, nil
}

// AllocateConn would make an RFC 6062 TCP relay; pion/turn v4 has none.
func (g *relayGen) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errNoTCPRelay
}

// tuneUDP sets the socket buffers. Linux clamps too large a value without an
// error, so a failure here is unexpected and not worth failing over.
func tuneUDP(c *net.UDPConn) {
	_ = c.SetReadBuffer(sockBuf)
	_ = c.SetWriteBuffer(sockBuf)
}

// relayConn counts the bytes through a relay socket.
type relayConn struct {
	*net.UDPConn
	bytes *atomic.Uint64
}

func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.UDPConn.ReadFrom(b)
	if n > 0 {
		c.bytes.Add(uint64(n))
	}
	return n, addr, err
}

func (c *relayConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, addr)
	if n > 0 {
		c.bytes.Add(uint64(n))
	}
	return n, err
}
