package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// tcpProxy forwards TCP connections to a target address. cut closes every
// current connection (both halves); while held, new connections are accepted
// but not forwarded until release, so a client's reconnect attempts wait.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	held    []net.Conn
	holding bool
	closed  bool
	wg      sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's base URL for invites.
func (p *tcpProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *tcpProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		switch {
		case p.closed:
			c.Close()
		case p.holding:
			p.held = append(p.held, c)
			p.conns[c] = struct{}{}
		default:
			p.conns[c] = struct{}{}
			p.wg.Add(1)
			go p.forward(c)
		}
		p.mu.Unlock()
	}
}

// forward pipes c to a fresh connection to the target until either side ends.
func (p *tcpProxy) forward(c net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	if p.closed || !p.track(c) {
		p.mu.Unlock()
		up.Close()
		c.Close()
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		// Either direction ending ends both: a cut looks like a dead link.
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
	p.drop(c)
	p.drop(up)
}

// setTarget sends later connections to addr (current ones stay).
func (p *tcpProxy) setTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

// track reports whether c is still a live proxied connection; p.mu is held.
func (p *tcpProxy) track(c net.Conn) bool {
	_, ok := p.conns[c]
	return ok
}

func (p *tcpProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// cut closes every current connection; with hold, later connections wait
// for release.
func (p *tcpProxy) cut(hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = hold
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.held = nil
}

// release forwards the held connections and stops holding.
func (p *tcpProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = false
	for _, c := range p.held {
		if _, ok := p.conns[c]; ok && !p.closed {
			p.wg.Add(1)
			go p.forward(c)
		}
	}
	p.held = nil
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// frameTransform rewrites one relayed frame into the frames to deliver
// instead (none to drop it). It owns its input.
type frameTransform func(frame []byte) [][]byte

// wsMITM is a WebSocket man in the middle: it accepts clients, dials the
// real server's /ws for each, and relays messages both ways, passing them
// through the transforms of its mitmOpts.
type wsMITM struct {
	HTTP *httptest.Server

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{} // both sides of every relayed session
}

// mitmOpts say what a wsMITM changes. Nil fields change nothing.
type mitmOpts struct {
	// Down makes the transform of server->client binary frames for one
	// connection (it may keep state across the frames of that connection).
	Down func() frameTransform
	// DownText rewrites server->client text frames; it may block (holding
	// that connection's stream) until it returns.
	DownText func(data []byte) []byte
	// UpText rewrites client->server text frames.
	UpText func(data []byte) []byte
	// DownTextN makes the transform of server->client text frames for one
	// connection; unlike DownText it may drop a frame or emit several (to
	// inject frames of its own). It replaces DownText when both are set.
	DownTextN func() frameTransform
}

func newWSMITM(t *testing.T, serverURL string, o mitmOpts) *wsMITM {
	t.Helper()
	target := "ws" + strings.TrimPrefix(serverURL, "http") + "/ws"
	up := websocket.Upgrader{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	m := &wsMITM{conns: map[*websocket.Conn]struct{}{}}
	var wg sync.WaitGroup
	one := func(f func([]byte) []byte) frameTransform {
		if f == nil {
			return nil
		}
		return func(b []byte) [][]byte { return [][]byte{f(b)} }
	}
	m.HTTP = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		cl, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		sv, _, err := websocket.DefaultDialer.Dial(target, nil)
		if err != nil {
			cl.Close()
			return
		}
		m.mu.Lock()
		m.conns[cl], m.conns[sv] = struct{}{}, struct{}{}
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			delete(m.conns, cl)
			delete(m.conns, sv)
			m.mu.Unlock()
		}()
		var down frameTransform
		if o.Down != nil {
			down = o.Down()
		}
		downText := one(o.DownText)
		if o.DownTextN != nil {
			downText = o.DownTextN()
		}
		done := make(chan struct{})
		go func() { // client -> server
			defer close(done)
			relayWS(sv, cl, nil, one(o.UpText))
		}()
		relayWS(cl, sv, down, downText) // server -> client
		<-done
	}))
	// Clients, registered later, are closed before this runs.
	t.Cleanup(func() {
		m.HTTP.Close()
		m.cut()
		wg.Wait()
	})
	return m
}

// cut closes every relayed connection, both sides, without a close frame.
func (m *wsMITM) cut() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for c := range m.conns {
		c.Close()
	}
}

// relayWS copies messages from src to dst until either fails, then closes
// both (so the other direction ends too). Binary and text messages go
// through bin and text when set. Pings and pongs are passed on as they are
// (gorilla handles control frames inside ReadMessage, so without these
// handlers it would answer the server's pings itself and the client would
// never see one): the client behind the man in the middle keeps its read
// deadline fresh exactly as it would without it, and the server hears the
// client's own pongs.
func relayWS(dst, src *websocket.Conn, bin, text frameTransform) {
	defer dst.Close()
	defer src.Close()
	forward := func(mt int) func(string) error {
		return func(data string) error {
			// An error here ends the relay at the next write anyway.
			_ = dst.WriteControl(mt, []byte(data), time.Now().Add(time.Second))
			return nil
		}
	}
	src.SetPingHandler(forward(websocket.PingMessage))
	src.SetPongHandler(forward(websocket.PongMessage))
	for {
		mt, data, err := src.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				_ = dst.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ce.Text))
			}
			return
		}
		out := [][]byte{data}
		switch {
		case mt == websocket.BinaryMessage && bin != nil:
			out = bin(data)
		case mt == websocket.TextMessage && text != nil:
			out = text(data)
		}
		for _, f := range out {
			if err := dst.WriteMessage(mt, f); err != nil {
				return
			}
		}
	}
}

// TestWSMITMPassesPings: the man in the middle is transparent for
// keep-alives: the server's pings reach the client behind it, and the pongs
// the server gets are the client's (not answered by the proxy itself).
func TestWSMITMPassesPings(t *testing.T) {
	const want = 3
	pongs := make(chan string, 64)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(data string) error { pongs <- data; return nil })
		go func() { // the reader runs the pong handler
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		for i := 0; ; i++ {
			if c.WriteControl(websocket.PingMessage, fmt.Appendf(nil, "ping-%d", i), time.Now().Add(time.Second)) != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	m := newWSMITM(t, srv.URL, mitmOpts{})
	cl, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(m.HTTP.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial the man in the middle: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	pings := make(chan string, 64)
	cl.SetPingHandler(func(data string) error {
		pings <- data
		return cl.WriteControl(websocket.PongMessage, []byte("client:"+data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := cl.ReadMessage(); err != nil {
				return
			}
		}
	}()
	timeout := time.After(10 * time.Second)
	for i := range want {
		select {
		case p := <-pings:
			if p != fmt.Sprintf("ping-%d", i) {
				t.Fatalf("client got ping %q, want ping-%d", p, i)
			}
		case <-timeout:
			t.Fatalf("client behind the man in the middle got %d pings, want %d", i, want)
		}
		select {
		case p := <-pongs:
			if p != fmt.Sprintf("client:ping-%d", i) {
				t.Fatalf("server got pong %q, want the client's client:ping-%d", p, i)
			}
		case <-timeout:
			t.Fatalf("server got %d pongs, want %d", i, want)
		}
	}
}
