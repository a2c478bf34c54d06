// Package udpbatch reads a UDP socket a batch of datagrams at a time
// (recvmmsg on Linux) and hands them out one by one: one system call for
// all the datagrams already queued on the socket when it reads, instead of
// one each. On loopback a system call costs about as much as the rest of a
// datagram's handling, and TURN makes every datagram cross more sockets.
package udpbatch

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Size is how many datagrams one read may return.
const Size = 32

// Reader reads datagrams from one UDP socket for a single reader.
type Reader struct {
	read       func([]ipv4.Message, int) (int, error)
	msgs       []ipv4.Message
	next, have int
}

// NewReader keeps up to Size datagrams of at most max bytes from c; longer
// ones are cut, as a read into a buffer of max bytes would cut them.
func NewReader(c *net.UDPConn, max int) *Reader {
	r := &Reader{msgs: make([]ipv4.Message, Size)}
	for i := range r.msgs {
		r.msgs[i].Buffers = [][]byte{make([]byte, max)}
	}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		r.read = ipv6.NewPacketConn(c).ReadBatch
	} else {
		r.read = ipv4.NewPacketConn(c).ReadBatch
	}
	return r
}

// ReadFrom returns the next datagram, reading a new batch when the last one
// is used up. It honours the socket's read deadline.
func (r *Reader) ReadFrom(b []byte) (int, net.Addr, error) {
	if r.next == r.have {
		n, err := r.read(r.msgs, 0)
		if err != nil {
			return 0, nil, err
		}
		r.next, r.have = 0, n
	}
	m := &r.msgs[r.next]
	r.next++
	return copy(b, m.Buffers[0][:m.N]), m.Addr, nil
}

// Conn is a UDP socket whose ReadFrom reads in batches; one goroutine at a
// time may read it. Everything else is the socket's.
type Conn struct {
	*net.UDPConn
	r *Reader
}

// NewConn wraps c, keeping datagrams of at most max bytes.
func NewConn(c *net.UDPConn, max int) *Conn { return &Conn{UDPConn: c, r: NewReader(c, max)} }

func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) { return c.r.ReadFrom(b) }
