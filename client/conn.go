package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// connect dials the server, joins the room and handles the welcome.
func (c *Client) connect(ctx context.Context) (*websocket.Conn, error) {
	conn, resp, err := c.opts.Dialer.DialContext(ctx, c.wsURL, dialHeader())
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("connect to %s: server answered %s: %w", c.wsURL, resp.Status, ErrUnreachable)
		}
		return nil, fmt.Errorf("connect to %s: %v: %w", c.wsURL, err, ErrUnreachable)
	}
	conn.SetReadLimit(protocol.MaxFrameBytes)
	// join blocks on the welcome; a cancelled ctx (or Close) closes the
	// socket under it.
	stop := context.AfterFunc(ctx, func() { conn.NetConn().Close() })
	err = c.join(conn)
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil { // closed while joining
		conn.Close()
		return nil, fmt.Errorf("connect: %w", ErrClosed)
	}
	c.conn = conn
	c.connGen++
	close(c.connReady)
	return conn, nil
}

func (c *Client) join(conn *websocket.Conn) error {
	join := &protocol.Message{
		Type: protocol.TypeJoin, V: protocol.Version, Room: c.keys.RoomIDString(),
		Verifier: protocol.EncodeB64(c.keys.Verifier[:]), Member: c.id,
		Pub: protocol.EncodeB64(c.ident.Pub), MAC: protocol.EncodeB64(c.keys.Announce(c.id, c.ident.Pub)),
	}
	b, err := protocol.Encode(join)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("join: send: %v: %w", err, ErrUnreachable)
	}
	_ = conn.SetReadDeadline(time.Now().Add(protocol.PongWait))
	kind, data, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("join: no welcome: %v: %w", err, ErrUnreachable)
	}
	if kind != websocket.TextMessage {
		return fmt.Errorf("join: unexpected binary frame: %w", ErrProtocol)
	}
	m, err := protocol.Decode(data)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	switch m.Type {
	case protocol.TypeWelcome:
		c.welcome(m)
		return nil
	case protocol.TypeError:
		return serverError(m)
	}
	return fmt.Errorf("join: unexpected %q: %w", m.Type, ErrProtocol)
}

// run owns the connection: it reads until the connection breaks, then
// reconnects with jittered exponential backoff until the client is closed.
func (c *Client) run(conn *websocket.Conn) {
	defer close(c.done)
	c.state(protocol.StateConnected)
	for {
		err := c.readLoop(conn)
		c.mu.Lock()
		c.conn = nil
		c.connReady = make(chan struct{})
		// Who was here: after a server restart the room is rebuilt as members
		// come back, and the relay only owes a message to members it knows.
		c.awaitBack = c.awaitBack[:0]
		for id, m := range c.members {
			if m.Online {
				c.awaitBack = append(c.awaitBack, id)
			}
		}
		c.mu.Unlock()
		conn.Close()
		c.failSends(fmt.Errorf("connection lost: %v: %w", err, ErrUnreachable))
		if c.ctx.Err() != nil {
			return
		}
		var fatal *ServerError
		if errors.As(err, &fatal) && fatal.Fatal() {
			c.setCloseErr(err)
			return
		}
		c.log.Info("connection lost; reconnecting", "err", err)
		c.state(protocol.StateReconnecting)
		if conn = c.reconnect(); conn == nil {
			return
		}
		c.mu.Lock()
		c.backBy = time.Now().Add(rejoinGrace)
		c.mu.Unlock()
		c.state(protocol.StateRestored)
	}
}

// rejoinGrace bounds how long, after a reconnect, a chat waits for the
// members online before the break to be back in the room.
const rejoinGrace = 10 * time.Second

// waitRejoined blocks, for at most rejoinGrace after a reconnect, until the
// members that were online before the connection broke are online again:
// a message queued during a server restart then reaches them too.
func (c *Client) waitRejoined(ctx context.Context) error {
	c.mu.Lock()
	ids, by := slices.Clone(c.awaitBack), c.backBy
	c.mu.Unlock()
	return c.poll(ctx, func() bool { return time.Now().After(by) || len(c.offline(ids)) == 0 })
}

// offline returns the members of ids not online now.
func (c *Client) offline(ids []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range ids {
		if m := c.members[id]; m == nil || !m.Online {
			out = append(out, id)
		}
	}
	return out
}

// poll checks ok every 20 ms until it holds, ctx ends or the client closes.
func (c *Client) poll(ctx context.Context, ok func() bool) error {
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return fmt.Errorf("client closed: %w", ErrClosed)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (c *Client) reconnect() *websocket.Conn {
	delay := 100 * time.Millisecond
	for {
		conn, err := c.connect(c.ctx)
		if c.ctx.Err() != nil {
			return nil
		}
		if err == nil {
			return conn
		}
		var fatal *ServerError
		if errors.As(err, &fatal) && fatal.Fatal() {
			c.setCloseErr(err)
			return nil
		}
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-c.ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (c *Client) setCloseErr(err error) {
	c.mu.Lock()
	c.closeErr = err
	c.mu.Unlock()
}

// Err returns why the client stopped on its own (a fatal server error), or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

func (c *Client) state(s protocol.ConnState) {
	if c.opts.OnState != nil {
		c.opts.OnState(s)
	}
}

// readLoop reads frames into a reused buffer and dispatches them.
func (c *Client) readLoop(conn *websocket.Conn) error {
	buf := make([]byte, protocol.MaxFrameBytes)
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(protocol.PongWait)) })
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(protocol.PongWait))
		c.writeMu.Lock()
		defer c.writeMu.Unlock()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(protocol.WriteWait))
		if errors.Is(err, websocket.ErrCloseSent) || isTimeout(err) {
			return nil
		}
		return err
	})
	for {
		_ = conn.SetReadDeadline(time.Now().Add(protocol.PongWait))
		kind, r, err := conn.NextReader()
		if err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		if err := c.dispatch(kind, buf[:n]); err != nil {
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Client) dispatch(kind int, data []byte) error {
	if kind == websocket.BinaryMessage {
		d, err := protocol.ParseChunkDown(data)
		if err != nil {
			c.log.Warn("dropping malformed frame from server", "err", err)
			return nil
		}
		return c.handleChunk(&d)
	}
	m, err := protocol.Decode(data)
	if err != nil {
		c.log.Warn("dropping malformed message from server", "err", err)
		return nil
	}
	return c.handleMessage(m)
}

func (c *Client) handleMessage(m *protocol.Message) error {
	switch m.Type {
	case protocol.TypePresence:
		c.presence(m)
	case protocol.TypeMsg:
		return c.handleEnvelope(m)
	case protocol.TypeFileOK, protocol.TypeProgress, protocol.TypeDelivered, protocol.TypeUndeliverable:
		c.routeSend(m)
	case protocol.TypeSignal:
		c.handleSignal(m)
	case protocol.TypeTURN:
		c.mu.Lock()
		c.ice, c.iceExp = m.ICE, time.Unix(m.Expires, 0)
		fresh := c.iceFresh
		c.iceFresh = make(chan struct{})
		c.mu.Unlock()
		close(fresh)
	case protocol.TypeError:
		err := serverError(m)
		if m.File != "" {
			c.routeSend(m)
			return nil
		}
		if err.Fatal() {
			return err
		}
		c.log.Warn("server error", "code", m.Code, "error", m.Error)
	default:
		c.log.Warn("unexpected message from server", "type", m.Type)
	}
	return nil
}

// writeJSON sends a control message on the current connection.
func (c *Client) writeJSON(m *protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return c.write(websocket.TextMessage, b)
}

func (c *Client) write(kind int, data []byte) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return fmt.Errorf("not connected: %w", ErrUnreachable)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	if err := conn.WriteMessage(kind, data); err != nil {
		return fmt.Errorf("write: %v: %w", err, ErrUnreachable)
	}
	return nil
}

// waitConnected blocks until a connection is up.
func (c *Client) waitConnected(ctx context.Context) error {
	c.mu.Lock()
	ready := c.connReady
	c.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return fmt.Errorf("client closed: %w", ErrClosed)
	}
}

// connGeneration counts the connections made so far.
func (c *Client) connGeneration() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connGen
}

// waitNewConn blocks until a connection newer than generation gen is up: a
// write may fail before the read loop has noticed the old one broke.
func (c *Client) waitNewConn(ctx context.Context, gen uint64) error {
	return c.poll(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.connGen != gen && c.conn != nil
	})
}

func (c *Client) ack(id uint64) error {
	return c.writeJSON(&protocol.Message{Type: protocol.TypeAck, IDs: []uint64{id}})
}

func leaveMsg() *protocol.Message { return &protocol.Message{Type: protocol.TypeLeave} }
