package signaling

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// Close codes beyond RFC 6455's.
const (
	closeBadVerifier = 4001 // wrong room verifier (PROTOCOL.md)
	closeReplaced    = 4002 // the same member connected again
)

// conn is one client connection (a WebSocket or an HTTP fallback
// session). The reader is the handler goroutine; the writer and the
// delivery loop are started by serve and end before it returns.
type conn struct {
	s      *Server
	ws     wire            // the WebSocket, or an HTTP fallback session
	ctx    context.Context // ends at shutdown: aborts a waiting Put
	cancel context.CancelFunc

	ctrl     ctrlQueue     // encoded control messages; never blocks a sender
	joined   chan struct{} // closed once the member joined: the writer starts delivering
	closing  chan struct{} // closed by shutdown
	readDone chan struct{} // closed when the reader has stopped
	once     sync.Once
	reason   closeReason // set once, before closing is closed
	wg       sync.WaitGroup

	// Set under s.mu by join in the reader goroutine, then never changed.
	room     *room
	mem      *member
	bad      int        // bad requests so far (reader only)
	addr     *addrState // the client address's limits
	admitted bool       // counted in addr's live connections
	host     string     // the request's Host (Config.ICE)

	win window
}

// closeReason says how a connection ends.
type closeReason struct {
	graceful bool   // write msg and a close frame, then wait for the reply
	msg      []byte // encoded final message (an error), or nil
	code     int    // close code
	text     string // close reason text
	cause    string // for the log
}

func newConn(s *Server, ws wire) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s:        s,
		ws:       ws,
		ctx:      ctx,
		cancel:   cancel,
		ctrl:     ctrlQueue{max: s.cfg.SendQueue, ready: make(chan struct{}, 1)},
		joined:   make(chan struct{}),
		closing:  make(chan struct{}),
		readDone: make(chan struct{}),
	}
	c.win.init(s.cfg.DeliveryWindow, s.now)
	return c
}

// serve runs the connection: writer goroutine, then the read loop in this
// goroutine, then cleanup once every goroutine of the connection is done.
func (c *conn) serve(refusal *closeReason) {
	c.ws.SetReadLimit(protocol.MaxFrameBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.joinTimeout))
	c.wg.Add(1)
	go c.writeLoop()
	if refusal != nil {
		c.shutdown(refusal)
	}
	err := c.readLoop()
	c.countReadError(err)
	c.shutdown(&closeReason{cause: "read: " + err.Error()})
	close(c.readDone)
	c.wg.Wait()
	_ = c.ws.Close()
	c.cancel()
	c.s.disconnected(c)
}

// countReadError counts a connection ended by a limit: a frame over the
// read limit (gorilla has sent close 1009), or a read deadline (no join in
// time, or nothing, not even a pong, within the ping deadline).
func (c *conn) countReadError(err error) {
	var ne net.Error
	switch {
	case c.isClosing():
	case errors.Is(err, websocket.ErrReadLimit):
		c.s.limited.add(LimitFrameSize)
	case errors.As(err, &ne) && ne.Timeout() && c.mem == nil:
		c.s.limited.add(LimitJoinTimeout)
	case errors.As(err, &ne) && ne.Timeout():
		c.s.limited.add(LimitPingTimeout)
	}
}

// shutdown starts ending the connection; the first reason wins. It never
// blocks, so it may be called with s.mu held.
func (c *conn) shutdown(r *closeReason) {
	c.once.Do(func() {
		c.reason = *r
		c.cancel()
		close(c.closing)
		// Unblock a writer stuck on a peer that does not read.
		deadline := time.Now()
		if r.graceful {
			deadline = deadline.Add(closeGrace)
		}
		c.ws.interrupt(deadline)
		c.s.log.Debug("signaling: connection closing", "cause", r.cause, "code", r.code)
	})
}

func (c *conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// send queues an encoded control message. It never blocks: a client whose
// queue is full is cut off. Safe with s.mu held.
func (c *conn) send(b []byte) {
	if b == nil || c.isClosing() {
		return
	}
	if !c.ctrl.push(b) {
		c.s.cutOff.Add(1)
		c.s.limited.add(LimitSlowClient)
		c.s.log.Warn("signaling: slow client cut off", "queue", c.ctrl.max)
		c.shutdown(&closeReason{cause: errSlow.Error()})
	}
}

// ctrlQueue holds encoded control messages for the writer, at most max.
// Its memory grows with what is queued (an idle connection holds none),
// unlike a buffered channel of the same capacity.
type ctrlQueue struct {
	mu    sync.Mutex
	q     [][]byte
	max   int
	ready chan struct{} // 1-slot: something was queued
}

// push queues b, or reports false when the queue is full.
func (q *ctrlQueue) push(b []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) >= q.max {
		return false
	}
	q.q = append(q.q, b)
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// take returns everything queued, oldest first, and empties the queue.
func (q *ctrlQueue) take() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.q
	q.q = nil
	return out
}

// sendMsg encodes m and queues it.
func (c *conn) sendMsg(m *protocol.Message) { c.send(c.s.encode(m)) }

// sendError queues error{code, text, file}.
func (c *conn) sendError(code, text, file string) {
	m := protocol.Error(code, text)
	m.File = file
	c.sendMsg(m)
}

// badRequest answers a bad message; too many of them end the connection.
func (c *conn) badRequest(text, file string) {
	c.bad++
	if c.bad >= maxBadRequests {
		c.s.limited.add(LimitBadRequests)
		c.shutdown(refuse(protocol.CodeBadRequest, errTooManyBad.Error()))
		return
	}
	c.sendError(protocol.CodeBadRequest, text, file)
}

// encode returns the wire form of a server-built message (nil, logged, if
// it does not validate: a bug).
func (s *Server) encode(m *protocol.Message) []byte {
	b, err := protocol.Encode(m)
	if err != nil {
		s.log.Error("signaling: encode", "type", m.Type, "err", err)
		return nil
	}
	return b
}

// refuse is the reason for ending a connection with error{code, text}.
func refuse(code, text string) *closeReason {
	cc := websocket.ClosePolicyViolation
	switch code {
	case protocol.CodeBadVerifier:
		cc = closeBadVerifier
	case protocol.CodeRoomFull, protocol.CodeTooMany, protocol.CodeRateLimited:
		cc = websocket.CloseTryAgainLater
	case protocol.CodeGoingAway:
		cc = websocket.CloseGoingAway
	}
	b, _ := protocol.Encode(protocol.Error(code, text))
	return &closeReason{graceful: true, msg: b, code: cc, text: code, cause: code}
}

func goingAway() *closeReason {
	return refuse(protocol.CodeGoingAway, "server shutting down; reconnect later")
}
