package signaling

import (
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// outFrame is one relay item ready for the wire: a text msg (body), or a
// binary ChunkDown (head, then body, the sealed chunk, written uncopied).
type outFrame struct {
	text bool
	head []byte
	body []byte
}

// writeLoop is the only goroutine that writes to the socket. Control
// messages go first, then pings that are due, then relay items owed to the
// member (within the delivery window); otherwise it waits for any of them.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	joined := c.joined
	var d *delivery // set once joined
	for {
		if c.isClosing() {
			c.finish()
			return
		}
		var err error
		if batch := c.ctrl.take(); len(batch) > 0 {
			for _, b := range batch {
				if err = c.writeText(b); err != nil || c.isClosing() {
					break
				}
			}
		} else if f, ok := d.next(); ok {
			err = c.writeFrame(f)
		} else {
			select {
			case <-c.ctrl.ready: // taken on the next turn
			case <-joined:
				joined, d = nil, c.newDelivery()
			case <-d.wait():
			case <-c.win.wake:
			case <-ping.C:
				err = c.ping()
			case <-c.closing:
			}
		}
		if err == nil {
			select {
			case <-ping.C: // due while the loop was busy
				err = c.ping()
			default:
			}
		}
		if err != nil {
			c.shutdown(&closeReason{cause: errWriteFailed.Error() + ": " + err.Error()})
		}
	}
}

func (c *conn) ping() error {
	return c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(protocol.WriteWait))
}

func (c *conn) writeText(b []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

func (c *conn) writeFrame(f outFrame) error {
	if f.text {
		return c.writeText(f.body)
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	w, err := c.ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return err
	}
	if _, err := w.Write(f.head); err != nil {
		return err
	}
	if _, err := w.Write(f.body); err != nil {
		return err
	}
	return w.Close()
}

// finish ends the connection from the writer's side: for a graceful end it
// writes the final message and a close frame and gives the peer closeGrace
// to answer; then it closes the socket, which also ends the reader.
func (c *conn) finish() {
	r := c.reason
	if r.graceful {
		deadline := time.Now().Add(closeGrace)
		_ = c.ws.SetWriteDeadline(deadline)
		if r.msg != nil {
			_ = c.ws.WriteMessage(websocket.TextMessage, r.msg)
		}
		msg := websocket.FormatCloseMessage(r.code, r.text)
		if err := c.ws.WriteControl(websocket.CloseMessage, msg, deadline); err == nil {
			t := time.NewTimer(closeGrace)
			select {
			case <-c.readDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	_ = c.ws.Close()
}
