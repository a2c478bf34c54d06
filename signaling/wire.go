package signaling

import (
	"io"
	"time"

	"github.com/gorilla/websocket"
)

// wire is what a conn needs of its transport: a WebSocket (wsWire) or an
// HTTP fallback session (*session). Message types and close codes are
// gorilla's, so the conn's limits, deadlines and join logic are the same
// for both.
type wire interface {
	NextReader() (messageType int, r io.Reader, err error)
	SetReadLimit(limit int64)
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// SetPongHandler sets what is called whenever the client shows it is
	// alive (a pong; over HTTP, any request of the session).
	SetPongHandler(h func(appData string) error)
	WriteMessage(messageType int, data []byte) error
	NextWriter(messageType int) (io.WriteCloser, error)
	WriteControl(messageType int, data []byte, deadline time.Time) error
	Close() error
	// interrupt makes a write in progress, or the next one, fail at t.
	interrupt(t time.Time)
}

// wsWire is a gorilla WebSocket as a wire.
type wsWire struct{ *websocket.Conn }

func (w wsWire) interrupt(t time.Time) { _ = w.NetConn().SetWriteDeadline(t) }
