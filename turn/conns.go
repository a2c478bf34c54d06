package turn

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"
	pionturn "github.com/pion/turn/v4"

	"cloakroom/internal/udpbatch"
)

const (
	// streamIdle closes a TCP/TLS connection silent for longer than the
	// longest allocation lifetime pion grants (1 h): a client keeping an
	// allocation refreshes it before then.
	streamIdle = time.Hour + time.Minute
	// deadlineSlack: the idle deadline is pushed at most once a minute.
	deadlineSlack = time.Minute
)

// gatedPacketConn is the UDP listener as pion sees it: every datagram passes
// the gate first. One goroutine (pion's read loop) calls ReadFrom; it reads
// the socket in batches.
type gatedPacketConn struct {
	*net.UDPConn
	batch *udpbatch.Reader
	gate  *gate
	msg   stun.Message
	exit  func()
}

func (c *gatedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.batch.ReadFrom(b)
		if err != nil {
			c.exit()
			return n, addr, err
		}
		reply, drop := c.gate.inspect(&c.msg, b[:n], addr)
		if !drop {
			return n, addr, nil
		}
		if reply != nil {
			_, _ = c.UDPConn.WriteTo(reply, addr) // like any UDP answer: best effort
		}
	}
}

// gatedListener hands pion gated connections, keeps them for Close, and
// refuses connections over the cap.
type gatedListener struct {
	net.Listener
	s    *Server
	exit func()
}

func (l *gatedListener) Accept() (net.Conn, error) {
	delay := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			l.exit()
			return nil, err
		}
		if err != nil { // e.g. out of file descriptors: pion would stop accepting
			l.s.log.Warn("turn: accept", "err", err)
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		if g := l.s.track(c); g != nil {
			return g, nil
		}
		_ = c.Close()
	}
}

// gatedConn is one TCP/TLS client connection as pion sees it. Read returns
// one whole frame at a time (pion's own STUNConn re-frames it); frames the
// gate refuses are answered here and never returned.
//
// Until pion answers an Allocate with success on it (which needs valid
// credentials), the connection keeps the read deadline it was accepted
// with (Config.PreAuthTimeout): frames without credentials, such as
// Binding requests, do not keep it open.
type gatedConn struct {
	net.Conn
	framer   *pionturn.STUNConn
	gate     *gate
	msg      stun.Message
	deadline time.Time
	allowed  atomic.Bool // an Allocate succeeded on this connection
	exit     func()
	close    func() error
}

// allocateSuccess is the first two bytes of an Allocate success response.
var allocateSuccess = stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse).Value()

// Write watches pion's answers for the first Allocate success; pion writes
// one whole message per call.
func (c *gatedConn) Write(b []byte) (int, error) {
	if !c.allowed.Load() && stun.IsMessage(b) &&
		uint16(b[0])<<8|uint16(b[1]) == allocateSuccess {
		c.allowed.Store(true)
	}
	return c.Conn.Write(b)
}

func (c *gatedConn) Read(b []byte) (int, error) {
	for {
		if err := c.pushDeadline(); err != nil {
			c.exit()
			return 0, err
		}
		n, _, err := c.framer.ReadFrom(b)
		if err != nil {
			c.exit()
			return 0, err
		}
		if n > len(b) {
			continue // larger than pion's buffer: pion drops it too
		}
		reply, drop := c.gate.inspect(&c.msg, b[:n], c.RemoteAddr())
		if !drop {
			return n, nil
		}
		if reply != nil {
			if _, err := c.Conn.Write(reply); err != nil {
				c.exit()
				return 0, err
			}
		}
	}
}

// pushDeadline keeps the pre-auth deadline set by track until an Allocate
// succeeded, then sets streamIdle after each frame.
func (c *gatedConn) pushDeadline() error {
	if !c.allowed.Load() {
		return nil
	}
	now := time.Now()
	if c.deadline.Sub(now) > streamIdle-deadlineSlack {
		return nil
	}
	c.deadline = now.Add(streamIdle)
	return c.Conn.SetReadDeadline(c.deadline)
}

// Close is idempotent: both pion and Server.Close close the connection.
func (c *gatedConn) Close() error { return c.close() }

// tracker counts what Close waits for: read loops and allocations.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n reaches 0 while Close waits
}

func (t *tracker) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// once returns a func that calls done the first time only.
func (t *tracker) once() func() {
	var o sync.Once
	return func() { o.Do(t.done) }
}

// wait reports whether n reached 0 within d.
func (t *tracker) wait(d time.Duration) bool {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return true
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-idle:
		return true
	case <-timer.C:
		return false
	}
}
