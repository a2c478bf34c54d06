package turn

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"

	"cloakroom/internal/udpbatch"
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
	dropped  *atomic.Uint64 // datagrams dropped on a full relay queue
	hub      relayHub
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
	rc := newRelayConn(c, relay, g)
	g.hub.conns.Store(relay.Port, rc)
	return rc, relay, nil
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

// relayHub is the live relay sockets by port. A datagram from one relay
// socket to another of this server (two members both relayed by it: every
// relay-only session between clients of one room) is handed over in memory
// instead of going out through the kernel and back in. That saves a sendto
// and a recvfrom per datagram, half of the server's system calls on that
// path; pion still checks the receiving allocation's permissions and
// channels exactly as for a datagram from the network.
type relayHub struct {
	announce net.IP
	conns    sync.Map // port -> *relayConn
}

// local returns the relay socket of this server that addr names, or nil.
func (h *relayHub) local(addr net.Addr) *relayConn {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || !ua.IP.Equal(h.announce) {
		return nil
	}
	c, ok := h.conns.Load(ua.Port)
	if !ok {
		return nil
	}
	return c.(*relayConn)
}

// Relay sockets deliver datagrams to pion through a queue that both their
// own socket reader and other relay sockets of the server fill.
const (
	relayQueue = 1024 // datagrams waiting for pion; more are dropped, as by a full socket buffer
	relayDgram = 2048 // bytes kept of a datagram: pion reads them into 1600 bytes
)

var dgramPool = sync.Pool{New: func() any { b := make([]byte, relayDgram); return &b }}

// datagram is one queued datagram: (*buf)[:n] from from.
type datagram struct {
	buf  *[]byte
	n    int
	from net.Addr
}

// relayConn is one relay socket: it counts the bytes through it and hands
// datagrams for another relay socket of the server straight to it. Its
// reader goroutine moves datagrams from the socket to the queue until Close.
// Deadlines are not supported (pion sets none on relay sockets).
type relayConn struct {
	*net.UDPConn
	addr    *net.UDPAddr // the announced address: the source of handed-over datagrams
	bytes   *atomic.Uint64
	dropped *atomic.Uint64
	hub     *relayHub
	queue   chan datagram
	closing chan struct{} // closed by Close
	dead    chan struct{} // closed when the reader has stopped, after readErr is set
	readErr error
	once    sync.Once
}

func newRelayConn(c *net.UDPConn, addr *net.UDPAddr, g *relayGen) *relayConn {
	rc := &relayConn{UDPConn: c, addr: addr, bytes: g.bytes, dropped: g.dropped, hub: &g.hub,
		queue: make(chan datagram, relayQueue), closing: make(chan struct{}), dead: make(chan struct{})}
	go rc.read()
	return rc
}

// read queues the socket's datagrams until the socket fails or is closed.
// A full queue blocks it, and then the kernel drops as it would for pion.
func (c *relayConn) read() {
	defer close(c.dead)
	batch := udpbatch.NewReader(c.UDPConn, relayDgram)
	for {
		p := dgramPool.Get().(*[]byte)
		n, from, err := batch.ReadFrom(*p)
		if err != nil {
			dgramPool.Put(p)
			c.readErr = err
			return
		}
		select {
		case c.queue <- datagram{buf: p, n: n, from: from}:
		case <-c.closing:
			dgramPool.Put(p)
			c.readErr = net.ErrClosed
			return
		}
	}
}

// ReadFrom returns the next datagram from the network or from another relay
// socket of the server.
func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-c.queue:
		n := copy(b, (*d.buf)[:d.n])
		dgramPool.Put(d.buf)
		c.bytes.Add(uint64(n))
		return n, d.from, nil
	case <-c.dead:
		return 0, nil, fmt.Errorf("turn: relay socket: %w", c.readErr)
	}
}

// WriteTo sends b to addr, handing it over in memory when addr is another
// relay socket of this server.
func (c *relayConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if dst := c.hub.local(addr); dst != nil {
		dst.deliver(b, c.addr)
		c.bytes.Add(uint64(len(b)))
		return len(b), nil
	}
	n, err := c.UDPConn.WriteTo(b, addr)
	if n > 0 {
		c.bytes.Add(uint64(n))
	}
	return n, err
}

// deliver queues a copy of b from from, or drops it when the queue is full
// or the socket closed, as the kernel would.
func (c *relayConn) deliver(b []byte, from *net.UDPAddr) {
	select {
	case <-c.closing:
		return
	default:
	}
	p := dgramPool.Get().(*[]byte)
	n := copy(*p, b)
	select {
	case c.queue <- datagram{buf: p, n: n, from: from}:
	default:
		dgramPool.Put(p)
		c.dropped.Add(1)
	}
}

// Close closes the socket and waits for its reader. It is idempotent.
func (c *relayConn) Close() error {
	var err error
	c.once.Do(func() {
		c.hub.conns.CompareAndDelete(c.addr.Port, c)
		close(c.closing)
		err = c.UDPConn.Close()
		<-c.dead
	})
	return err
}
