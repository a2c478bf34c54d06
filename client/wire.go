package client

import (
	"io"
	"time"
)

// wire is the room's connection to the server: a gorilla WebSocket, or an
// HTTP fallback session (httpWire) that behaves like one (message types
// and close codes are gorilla's).
type wire interface {
	NextReader() (messageType int, r io.Reader, err error)
	ReadMessage() (messageType int, p []byte, err error)
	WriteMessage(messageType int, data []byte) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	SetReadLimit(limit int64)
	SetPongHandler(h func(appData string) error)
	SetPingHandler(h func(appData string) error)
	Close() error
}
