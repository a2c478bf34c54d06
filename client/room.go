package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// room is the room session: the WebSocket connection to the server and its
// reconnecting, the verified member list, chat, and sealed signals. What
// concerns files or peer sessions it hands to its roomEvents.
type room struct {
	opts   Options
	log    *slog.Logger
	keys   *crypto.RoomKeys
	ident  *crypto.Identity
	id     string
	wsURL  string
	events roomEvents
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the connection loop ends

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced when conn or a member's state changes
	conn      wire          // current connection, nil while reconnecting
	wireKind  string        // WireWebSocket, or WireHTTP once a WebSocket was refused (kept for the client's lifetime)
	connGen   uint64        // connections made so far
	awaitBack []string      // members online when the connection last broke
	backBy    time.Time     // until when a chat waits for them
	members   map[string]*Member
	seen      map[[16]byte]bool       // envelope ids already handled
	order     *protocol.Order         // judges stamped messages: order, gaps, replays
	pings     map[string]string       // member -> nonce of our last presence challenge
	histSeq   uint64                  // chat envelopes remembered so far (history's last is number histSeq)
	histMark  map[string]uint64       // member -> histSeq when we challenged it (learned it is here)
	names     map[string]string       // member -> display name it sent (name signal)
	history   []protocol.HistItem     // the last chat envelopes seen or sent, oldest first
	stamp     protocol.Stamp          // this member's session and the last seq it sealed
	pairs     map[string]*crypto.Pair // by member id, one per session
	ice       []protocol.ICEServer    // TURN servers from the welcome
	iceExp    time.Time
	iceFresh  chan struct{} // closed when fresh ICE credentials arrive
	ttl       time.Duration
	closeErr  error

	resend   resender   // chats written lately, written again after a reconnect
	writeMu  sync.Mutex // one writer at a time on conn
	signalMu sync.Mutex // seal+write of signals, so their counters stay in order
}

// roomEvents is what the room session hands on to the rest of the client.
// The read loop calls them, so they must not block for long; chunk blocks
// while the receiver is behind, which is the relay's back-pressure.
type roomEvents interface {
	// fileEvent takes the server's word on a file being sent (accepted,
	// progress, delivered, undeliverable, or an error naming the file).
	fileEvent(m *protocol.Message)
	// manifest takes a sealed file announcement from the relay; it acks it.
	manifest(m *protocol.Message, meta crypto.EnvelopeMeta, sealed []byte) error
	// chunk takes a chunk from the relay (an error ends the connection).
	chunk(d *protocol.ChunkDown) error
	// signal takes an authenticated signal from a member.
	signal(from string, body *protocol.Signal)
	// tampered says a member's signal failed to open.
	tampered(from string, err error)
	// presence says a member joined, left, or went on- or offline.
	presence(member, event string)
	// verified says a member answered the presence challenge; hist is the
	// chat history as it stood then.
	verified(member string, hist []protocol.HistItem)
	// connLost says the connection broke (a new one may follow).
	connLost(err error)
}

func newRoom(wsURL string, secret crypto.Secret, opts Options, ident *crypto.Identity) *room {
	ctx, cancel := context.WithCancel(context.Background())
	return &room{
		opts: opts, log: opts.Logger, keys: crypto.DeriveRoom(secret), ident: ident, id: uuid.NewString(),
		wsURL: wsURL, ctx: ctx, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}),
		members: map[string]*Member{}, seen: map[[16]byte]bool{}, pairs: map[string]*crypto.Pair{},
		iceFresh: make(chan struct{}), order: protocol.NewOrder(time.Now()), pings: map[string]string{}, histMark: map[string]uint64{},
		stamp: protocol.Stamp{Session: randomSession()},
	}
}

// randomSession is a fresh stamp session id: 16 random bytes, hex.
func randomSession() string {
	var b [16]byte
	crand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// nextStamp stamps the next message this member seals.
func (r *room) nextStamp() protocol.Stamp {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stamp.Seq++
	r.stamp.Time = time.Now().UnixMilli()
	return r.stamp
}

// changedLocked wakes every waiter on the room's state.
func (r *room) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// connect dials the server, joins the room and handles the welcome. Over
// a WebSocket first; when the upgrade is refused, or the WebSocket breaks
// before the welcome, over the HTTP fallback, which it then keeps using.
func (r *room) connect(ctx context.Context) (wire, error) {
	r.mu.Lock()
	kind := r.wireKind
	r.mu.Unlock()
	if kind == WireHTTP {
		return r.connectOver(ctx, WireHTTP)
	}
	conn, err := r.connectOver(ctx, WireWebSocket)
	var refused *wsRefused
	if err == nil || !errors.As(err, &refused) || ctx.Err() != nil {
		return conn, err
	}
	r.log.Info("WebSocket refused; trying the HTTP fallback", "err", err)
	conn, herr := r.connectOver(ctx, WireHTTP)
	if herr != nil {
		return nil, errors.Join(err, herr)
	}
	r.mu.Lock()
	r.wireKind = WireHTTP
	r.mu.Unlock()
	if r.opts.OnFallback != nil {
		r.opts.OnFallback(refused.err)
	}
	return conn, nil
}

// wsRefused is a WebSocket that a middlebox (or the server) would not
// carry: the upgrade answered with something else than 101, or the
// connection broke before the welcome.
type wsRefused struct{ err error }

func (e *wsRefused) Error() string { return e.err.Error() }
func (e *wsRefused) Unwrap() error { return e.err }

// dial opens a connection of the given kind.
func (r *room) dial(ctx context.Context, kind string) (wire, error) {
	if kind == WireHTTP {
		conn, err := dialHTTP(ctx, r.wsURL, r.opts.Dialer)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %v: %w", r.wsURL, err, ErrUnreachable)
		}
		return conn, nil
	}
	conn, resp, err := r.opts.Dialer.DialContext(ctx, r.wsURL, dialHeader())
	if err != nil {
		if resp != nil {
			return nil, &wsRefused{fmt.Errorf("connect to %s: server answered %s: %w", r.wsURL, resp.Status, ErrUnreachable)}
		}
		if errors.Is(err, websocket.ErrBadHandshake) {
			return nil, &wsRefused{fmt.Errorf("connect to %s: %v: %w", r.wsURL, err, ErrUnreachable)}
		}
		return nil, fmt.Errorf("connect to %s: %v: %w", r.wsURL, err, ErrUnreachable)
	}
	return conn, nil
}

// connectOver dials a connection of the given kind and joins over it.
func (r *room) connectOver(ctx context.Context, kind string) (wire, error) {
	conn, err := r.dial(ctx, kind)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(protocol.MaxFrameBytes)
	// join blocks on the welcome; a cancelled ctx (or Close) closes the
	// connection under it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	online, err := r.join(conn)
	var se *ServerError
	if err != nil && kind == WireWebSocket && !errors.As(err, &se) && ctx.Err() == nil {
		err = &wsRefused{err}
	}
	if !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	r.mu.Lock()
	if r.ctx.Err() != nil { // closed while joining
		r.mu.Unlock()
		conn.Close()
		return nil, fmt.Errorf("connect: %w", ErrClosed)
	}
	r.conn = conn
	r.connGen++
	r.changedLocked()
	r.mu.Unlock()
	// Challenge the members the welcome lists online only now that the
	// connection is the room's: a ping sent before would find no
	// connection to write on and be lost, leaving the member unverified
	// until the next presence event or reconnect.
	for _, id := range online {
		r.challenge(id)
	}
	return conn, nil
}

// join sends the join and handles the welcome; it returns the members the
// welcome lists online, for connect to challenge.
func (r *room) join(conn wire) ([]string, error) {
	join := &protocol.Message{
		Type: protocol.TypeJoin, V: protocol.Version, Room: r.keys.RoomIDString(),
		Verifier: protocol.EncodeB64(r.keys.Verifier[:]), Member: r.id,
		Pub: protocol.EncodeB64(r.ident.Pub), MAC: protocol.EncodeB64(r.keys.Announce(r.id, r.ident.Pub)),
	}
	b, err := protocol.Encode(join)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, fmt.Errorf("join: send: %v: %w", err, ErrUnreachable)
	}
	_ = conn.SetReadDeadline(time.Now().Add(protocol.PongWait))
	kind, data, err := conn.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("join: no welcome: %v: %w", err, ErrUnreachable)
	}
	if kind != websocket.TextMessage {
		return nil, fmt.Errorf("join: unexpected binary frame: %w", ErrProtocol)
	}
	m, err := protocol.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	switch m.Type {
	case protocol.TypeWelcome:
		return r.welcome(m), nil
	case protocol.TypeError:
		return nil, serverError(m)
	}
	return nil, fmt.Errorf("join: unexpected %q: %w", m.Type, ErrProtocol)
}

// run owns the connection: it reads until the connection breaks, then
// reconnects with jittered exponential backoff until the client is closed.
func (r *room) run(conn wire) {
	defer close(r.done)
	defer r.stopResend()
	r.state(protocol.StateConnected)
	for {
		err := r.readLoop(conn)
		r.mu.Lock()
		lost := r.connGen
		r.conn = nil
		r.changedLocked()
		// Who was here: after a server restart the room is rebuilt as members
		// come back, and the relay only owes a message to members it knows.
		r.awaitBack = r.awaitBack[:0]
		for id, m := range r.members {
			if m.Online {
				r.awaitBack = append(r.awaitBack, id)
			}
		}
		r.mu.Unlock()
		r.stopResend() // what it had not written is noted under lost
		conn.Close()
		r.events.connLost(fmt.Errorf("connection lost: %v: %w", err, ErrUnreachable))
		if r.ctx.Err() != nil {
			return
		}
		var fatal *ServerError
		if errors.As(err, &fatal) && fatal.Fatal() {
			r.setCloseErr(err)
			return
		}
		r.log.Info("connection lost; reconnecting", "err", err)
		r.state(protocol.StateReconnecting)
		if conn = r.reconnect(); conn == nil {
			return
		}
		r.mu.Lock()
		r.backBy = time.Now().Add(rejoinGrace)
		r.mu.Unlock()
		r.startResend(lost)
		r.state(protocol.StateRestored)
	}
}

func (r *room) reconnect() wire {
	delay := 100 * time.Millisecond
	for {
		conn, err := r.connect(r.ctx)
		if r.ctx.Err() != nil {
			return nil
		}
		if err == nil {
			return conn
		}
		var fatal *ServerError
		if errors.As(err, &fatal) && fatal.Fatal() {
			r.setCloseErr(err)
			return nil
		}
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-r.ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (r *room) setCloseErr(err error) {
	r.mu.Lock()
	r.closeErr = err
	r.mu.Unlock()
}

// Err returns why the client stopped on its own (a fatal server error), or nil.
func (r *room) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeErr
}

func (r *room) state(s protocol.ConnState) {
	if r.opts.OnState != nil {
		r.opts.OnState(s)
	}
}

// close disconnects and waits for the connection loop to end.
func (r *room) close() {
	r.cancel()
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	if conn != nil {
		r.writeMu.Lock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		r.writeMu.Unlock()
		_ = conn.Close()
	}
	<-r.done
}

// http header for the dial: the CLI sends no Origin.
func dialHeader() http.Header { return http.Header{} }
