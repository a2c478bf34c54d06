package signaling

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// frameBufs holds read buffers one byte larger than the largest frame, so a
// frame that fills one is still read to its end (the read limit has already
// refused anything bigger).
var frameBufs = sync.Pool{New: func() any {
	b := make([]byte, protocol.MaxFrameBytes+1)
	return &b
}}

var errFrameTooLarge = errors.New("frame over the read limit")

// readLoop reads frames until the connection fails or ends. Frames arriving
// while the connection is closing are read and dropped.
func (c *conn) readLoop() error {
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return err
		}
		buf := frameBufs.Get().(*[]byte)
		data, err := readFrame(r, *buf)
		if err == nil && mt == websocket.BinaryMessage {
			// A chunk is kept by the relay: give it an exact slice of its
			// own and free the buffer before a possibly long Put.
			data = bytes.Clone(data)
			frameBufs.Put(buf)
			buf = nil
		}
		if err == nil && !c.isClosing() {
			c.handleFrame(mt == websocket.BinaryMessage, data)
		}
		if buf != nil {
			frameBufs.Put(buf) // text: decoding copied what it keeps
		}
		if err != nil {
			return err
		}
		if c.mem != nil && !c.isClosing() {
			// Also covers a long wait in Put: the deadline counts from now.
			_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
		}
	}
}

// readFrame reads one whole frame into buf.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	n := 0
	for {
		if n == len(buf) {
			return nil, errFrameTooLarge
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// handleFrame dispatches one frame. A text frame's data is valid only
// during the call; a binary frame's is the handler's to keep.
func (c *conn) handleFrame(binary bool, data []byte) {
	if tap := c.s.cfg.OnFrame; tap != nil {
		tap(binary, bytes.Clone(data))
	}
	if c.mem == nil {
		c.handleJoin(binary, data)
		return
	}
	if binary {
		c.handleBinary(data)
		return
	}
	m, err := protocol.Decode(data)
	if err != nil {
		c.badRequest("malformed message: "+truncate(err.Error()), "")
		return
	}
	if m.Type != protocol.TypeAck && !c.allowMsg(m) {
		return
	}
	switch m.Type {
	case protocol.TypeMsg:
		c.handleMsg(m)
	case protocol.TypeFile:
		c.handleFile(m)
	case protocol.TypeAck:
		c.handleAck(m)
	case protocol.TypeSignal:
		c.handleSignal(m)
	case protocol.TypeLeave:
		c.handleLeave()
	case protocol.TypeTURN:
		ice, exp := c.s.ice(turnUser(c.room.id, c.mem.id), c.host)
		c.sendMsg(&protocol.Message{Type: protocol.TypeTURN, ICE: ice, Expires: exp})
	case protocol.TypeJoin:
		c.badRequest("already joined", "")
	default:
		c.badRequest("not a client message: "+m.Type, "")
	}
}

func (c *conn) handleBinary(data []byte) {
	kind, err := protocol.FrameKind(data)
	switch {
	case err != nil:
		c.badRequest("malformed binary frame", "")
	case kind != protocol.FrameChunkUp:
		c.badRequest("binary frame kind not accepted from clients", "")
	default:
		c.handleChunk(data)
	}
}

// allowMsg applies the address's message rate: a message waits for its
// token up to msgWait (the reader slows down: back-pressure), and past that
// it is dropped with error{rate_limited} (with its file, if any, so a
// sender's transfer fails loudly). Acks are exempt: they free server memory.
func (c *conn) allowMsg(m *protocol.Message) bool {
	if ok, _ := c.wait(c.addr.msgs, 1, msgWait); ok {
		return true
	}
	c.s.limited.add(LimitMsgRate)
	c.sendError(protocol.CodeRateLimited, fmt.Sprintf(
		"too many messages from your address (over %g a second); this %s was dropped: slow down", c.s.cfg.MsgRate, m.Type), m.File)
	return false
}

// truncate bounds error text echoed to a client (protocol limit 1024).
func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
