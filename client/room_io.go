package client

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// readLoop reads frames into a reused buffer and dispatches them.
func (r *room) readLoop(conn wire) error {
	buf := make([]byte, protocol.MaxFrameBytes)
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(protocol.PongWait)) })
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(protocol.PongWait))
		r.writeMu.Lock()
		defer r.writeMu.Unlock()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(protocol.WriteWait))
		if errors.Is(err, websocket.ErrCloseSent) || isTimeout(err) {
			return nil
		}
		return err
	})
	for {
		_ = conn.SetReadDeadline(time.Now().Add(protocol.PongWait))
		kind, rd, err := conn.NextReader()
		if err != nil {
			return err
		}
		n, err := io.ReadFull(rd, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		if err := r.dispatch(kind, buf[:n]); err != nil {
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (r *room) dispatch(kind int, data []byte) error {
	if kind == websocket.BinaryMessage {
		d, err := protocol.ParseChunkDown(data)
		if err != nil {
			r.log.Warn("dropping malformed frame from server", "err", err)
			return nil
		}
		return r.events.chunk(&d)
	}
	m, err := protocol.Decode(data)
	if err != nil {
		r.log.Warn("dropping malformed message from server", "err", err)
		return nil
	}
	return r.handleMessage(m)
}

func (r *room) handleMessage(m *protocol.Message) error {
	switch m.Type {
	case protocol.TypePresence:
		r.presence(m)
	case protocol.TypeMsg:
		return r.handleEnvelope(m)
	case protocol.TypeFileOK, protocol.TypeProgress, protocol.TypeDelivered, protocol.TypeUndeliverable:
		r.events.fileEvent(m)
	case protocol.TypeSignal:
		r.handleSignal(m)
	case protocol.TypeTURN:
		r.mu.Lock()
		r.ice, r.iceExp = m.ICE, time.Unix(m.Expires, 0)
		fresh := r.iceFresh
		r.iceFresh = make(chan struct{})
		r.mu.Unlock()
		close(fresh)
	case protocol.TypeError:
		err := serverError(m)
		if m.File != "" {
			r.events.fileEvent(m)
			return nil
		}
		if err.Fatal() {
			return err
		}
		r.log.Warn("server error", "code", m.Code, "error", m.Error)
	default:
		r.log.Warn("unexpected message from server", "type", m.Type)
	}
	return nil
}

// writeJSON sends a control message on the current connection.
func (r *room) writeJSON(m *protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return r.write(websocket.TextMessage, b)
}

func (r *room) write(kind int, data []byte) error {
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	if conn == nil {
		return fmt.Errorf("not connected: %w", ErrUnreachable)
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	if err := conn.WriteMessage(kind, data); err != nil {
		return fmt.Errorf("write: %v: %w", err, ErrUnreachable)
	}
	return nil
}

func (r *room) ack(id uint64) error {
	return r.writeJSON(&protocol.Message{Type: protocol.TypeAck, IDs: []uint64{id}})
}

func leaveMsg() *protocol.Message { return &protocol.Message{Type: protocol.TypeLeave} }
