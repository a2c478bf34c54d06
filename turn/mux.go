package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ALPNTURN is the ALPN protocol id of TURN over TLS (RFC 7443).
const ALPNTURN = "stun.turn"

// DefaultMuxTimeout bounds a connection's TLS handshake and, without ALPN,
// the wait for its first bytes.
const DefaultMuxTimeout = 10 * time.Second

// MuxConfig configures a Mux.
type MuxConfig struct {
	// TLS holds the certificate. Its NextProtos are kept (e.g.
	// "http/1.1"), after ALPNTURN.
	TLS *tls.Config
	// Timeout bounds the TLS handshake plus, for a client that offers no
	// ALPN, its first bytes (DefaultMuxTimeout).
	Timeout time.Duration
	Logger  *slog.Logger
}

// MuxStats counts the connections a Mux handed on, and those it closed.
type MuxStats struct {
	HTTPByALPN, HTTPBySniff uint64 // to HTTP: ALPN said so, or the first bytes were not STUN
	TURNByALPN, TURNBySniff uint64 // to TURN: ALPN "stun.turn", or the first bytes were STUN
	Failed                  uint64 // closed: bad handshake, silent past Timeout, or nobody accepting
}

// Mux shares one TCP port between HTTPS and TURN over TLS. It terminates
// TLS itself and tells the two apart by the ALPN the client negotiated
// ("stun.turn" is TURN, any other is HTTP) or, when the client offered
// none (Chromium's and pion's TURN clients offer none), by the first bytes
// after the handshake: a STUN message header (first two bits 0, magic
// cookie at bytes 4-8) is TURN, anything else HTTP. Bytes read to decide
// are handed on with the connection.
//
// Connections come out of two listeners: HTTP (for an http.Server, with
// TLS already done) and TURN (Config.TLSListener of the TURN server).
// Plain (non-TLS) bytes on the port are refused, as by any HTTPS server.
type Mux struct {
	ln      net.Listener
	tls     *tls.Config
	timeout time.Duration
	log     *slog.Logger
	http    *chanListener
	turn    *chanListener
	wg      sync.WaitGroup // one per connection being classified

	httpALPN, httpSniff, turnALPN, turnSniff, failed atomic.Uint64
}

// NewMux returns a Mux for ln; Serve runs it.
func NewMux(ln net.Listener, cfg MuxConfig) (*Mux, error) {
	if !hasCert(cfg.TLS) {
		return nil, ErrTLSConfig
	}
	// ALPNTURN first: Go picks the server's first protocol the client
	// offers, and coturn's client offers "http/1.1" besides "stun.turn".
	tc := cfg.TLS.Clone()
	tc.NextProtos = append([]string{ALPNTURN}, slices.DeleteFunc(slices.Clone(tc.NextProtos), func(p string) bool { return p == ALPNTURN })...)
	m := &Mux{ln: ln, tls: tc, timeout: cfg.Timeout, log: cfg.Logger,
		http: newChanListener(ln.Addr()), turn: newChanListener(ln.Addr())}
	setDefault(&m.timeout, DefaultMuxTimeout)
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// HTTP is the listener of the HTTPS connections (TLS done: serve them
// without TLS).
func (m *Mux) HTTP() net.Listener { return m.http }

// TURN is the listener of the TURN-over-TLS connections (TLS done).
func (m *Mux) TURN() net.Listener { return m.turn }

// Stats returns the counters.
func (m *Mux) Stats() MuxStats {
	return MuxStats{HTTPByALPN: m.httpALPN.Load(), HTTPBySniff: m.httpSniff.Load(),
		TURNByALPN: m.turnALPN.Load(), TURNBySniff: m.turnSniff.Load(), Failed: m.failed.Load()}
}

// Serve accepts connections until ctx ends or the listener fails; then it
// closes the listener, ends both HTTP and TURN (their Accept fails with
// net.ErrClosed) and waits for the connections it is still classifying.
// It returns nil when ctx ended.
func (m *Mux) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = m.ln.Close() })
	defer stop()
	defer m.wg.Wait()
	defer m.http.Close()
	defer m.turn.Close()
	delay := 5 * time.Millisecond
	for {
		c, err := m.ln.Accept()
		switch {
		case ctx.Err() != nil:
			if c != nil {
				_ = c.Close()
			}
			return nil
		case errors.Is(err, net.ErrClosed):
			return fmt.Errorf("turn: mux: %w", err)
		case err != nil: // e.g. out of file descriptors: wait, do not spin
			m.log.Warn("turn: mux: accept", "err", err)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		m.wg.Add(1)
		go m.handle(ctx, c)
	}
}

// handle classifies c and hands it to the HTTP or the TURN listener.
func (m *Mux) handle(ctx context.Context, raw net.Conn) {
	defer m.wg.Done()
	closeRaw := context.AfterFunc(ctx, func() { _ = raw.Close() })
	c, turn, alpn, err := m.classify(ctx, raw)
	if !closeRaw() { // ctx ended: raw is closed
		m.failed.Add(1)
		return
	}
	if err != nil {
		m.failed.Add(1)
		_ = raw.Close()
		m.log.Debug("turn: mux: connection refused", "client", raw.RemoteAddr(), "err", err)
		return
	}
	l, n := m.http, &m.httpSniff
	switch {
	case turn && alpn:
		l, n = m.turn, &m.turnALPN
	case turn:
		l, n = m.turn, &m.turnSniff
	case alpn:
		n = &m.httpALPN
	}
	if !l.deliver(ctx, c) {
		m.failed.Add(1)
		_ = c.Close()
		return
	}
	n.Add(1)
}

// classify does the TLS handshake and decides. turn: the connection is
// TURN; alpn: ALPN decided (else the first bytes, kept in c).
func (m *Mux) classify(ctx context.Context, raw net.Conn) (c net.Conn, turn, alpn bool, err error) {
	if err := raw.SetDeadline(time.Now().Add(m.timeout)); err != nil {
		return nil, false, false, fmt.Errorf("deadline: %w", err)
	}
	tc := tls.Server(raw, m.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		answerPlainHTTP(err)
		return nil, false, false, fmt.Errorf("TLS handshake: %w", err)
	}
	c = tc
	switch tc.ConnectionState().NegotiatedProtocol {
	case ALPNTURN:
		turn, alpn = true, true
	case "":
		prefix, isTURN, err := sniffConn(tc)
		if err != nil {
			return nil, false, false, err
		}
		c, turn = &prefixConn{Conn: tc, prefix: prefix}, isTURN
	default:
		alpn = true
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, false, false, fmt.Errorf("deadline: %w", err)
	}
	return c, turn, alpn, nil
}

// sniffConn reads until sniff decides (within the deadline already set).
func sniffConn(c net.Conn) (prefix []byte, turn bool, err error) {
	buf := make([]byte, sniffLen)
	n := 0
	for {
		k, err := c.Read(buf[n:])
		n += k
		if turn, done := sniff(buf[:n]); done {
			return buf[:n], turn, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("first bytes: %w", err)
		}
	}
}

// answerPlainHTTP answers a plain HTTP request to the TLS port as
// net/http does ("Client sent an HTTP request to an HTTPS server").
func answerPlainHTTP(err error) {
	var rh tls.RecordHeaderError
	if !errors.As(err, &rh) || rh.Conn == nil || !looksLikeHTTP(rh.RecordHeader[:]) {
		return
	}
	_, _ = io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
}

func looksLikeHTTP(hdr []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO"} {
		if string(hdr) == m {
			return true
		}
	}
	return false
}

// sniffLen is the most sniff needs: a STUN header up to its magic cookie.
const sniffLen = 8

// stunCookie is the STUN magic cookie (RFC 5389), bytes 4-8 of a message.
var stunCookie = [4]byte{0x21, 0x12, 0xA4, 0x42}

// sniff decides from the first bytes of a stream whether it is TURN: a
// STUN message begins with two zero bits and has the magic cookie at
// bytes 4-8. done is false while the bytes so far could still be either
// (fewer than sniffLen that match so far); once done, more bytes never
// change the answer. Anything not STUN is HTTP — ChannelData (first byte
// 0x40-0x7F) is not looked for: it cannot open a TURN connection (a
// channel needs an allocation on that connection first), and its first
// byte range holds the upper-case letters HTTP methods begin with.
func sniff(b []byte) (turn, done bool) {
	if len(b) == 0 {
		return false, false
	}
	if b[0]&0xC0 != 0 {
		return false, true
	}
	for i := 4; i < min(len(b), sniffLen); i++ {
		if b[i] != stunCookie[i-4] {
			return false, true
		}
	}
	if len(b) < sniffLen {
		return false, false
	}
	return true, true
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) == 0 {
		return c.Conn.Read(b)
	}
	n := copy(b, c.prefix)
	c.prefix = c.prefix[n:]
	return n, nil
}

// chanListener is a net.Listener fed by the Mux.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close is idempotent; connections not yet accepted are closed by the Mux.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// deliver hands c to Accept; false when the listener or ctx ended first.
func (l *chanListener) deliver(ctx context.Context, c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}
