package turn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v4"
)

func TestSniff(t *testing.T) {
	stunHdr := []byte{0x00, 0x03, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3}
	for _, tc := range []struct {
		name       string
		in         []byte
		turn, done bool
	}{
		{"empty", nil, false, false},
		{"GET", []byte("GET / HTTP/1.1\r\n"), false, true},
		{"G alone", []byte("G"), false, true},
		{"STUN Allocate", stunHdr, true, true},
		{"STUN header so far", stunHdr[:6], false, false},
		{"STUN 8 bytes", stunHdr[:8], true, true},
		{"zero bits, no cookie", []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x13}, false, true},
		{"ChannelData", []byte{0x40, 0x00, 0x00, 0x04, 'a', 'b', 'c', 'd'}, false, true},
		{"TLS record so far", []byte{0x16, 0x03, 0x01}, false, false},
		{"TLS record", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if turn, done := sniff(tc.in); turn != tc.turn || done != tc.done {
				t.Fatalf("sniff(%x) = %v, %v; want %v, %v", tc.in, turn, done, tc.turn, tc.done)
			}
		})
	}
}

// FuzzSniff: sniff never asks for more than sniffLen bytes, and once it
// decides, more bytes do not change its answer.
func FuzzSniff(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{0x00, 0x03, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4})
	f.Add([]byte{0x00, 0x01, 0x00})
	f.Add([]byte{0x40, 0x00, 0x00, 0x04})
	f.Fuzz(func(t *testing.T, b []byte) {
		var first *bool
		for i := 0; i <= len(b); i++ {
			turn, done := sniff(b[:i])
			switch {
			case first != nil && turn != *first:
				t.Fatalf("sniff(%x) = %v after deciding %v on a prefix", b[:i], turn, *first)
			case first == nil && done:
				first = &turn
			case first == nil && i >= sniffLen:
				t.Fatalf("sniff(%x) undecided after %d bytes", b[:i], i)
			}
			if turn && !done {
				t.Fatalf("sniff(%x): turn but not done", b[:i])
			}
		}
	})
}

// muxEnv is a Mux on 127.0.0.1 with an HTTP server and a TURN server
// behind it.
type muxEnv struct {
	mux  *Mux
	addr string
	turn *Server
}

func startMux(t testing.TB, timeout time.Duration, cfgs ...Config) *muxEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := testTLS(t)
	tc.NextProtos = []string{"http/1.1"}
	m, err := NewMux(ln, MuxConfig{TLS: tc, Timeout: timeout, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{AllowLoopback: true}
	if len(cfgs) > 0 {
		cfg = cfgs[0]
	}
	cfg.TLSListener = m.TURN()
	s, _ := startServer(t, cfg)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "page")
	}), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	served, muxed := make(chan error, 1), make(chan error, 1)
	go func() { served <- hs.Serve(m.HTTP()) }()
	go func() { muxed <- m.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-muxed; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := <-served; !errors.Is(err, net.ErrClosed) {
			t.Errorf("http.Server.Serve: %v, want net.ErrClosed after the Mux stopped", err)
		}
	})
	return &muxEnv{mux: m, addr: ln.Addr().String(), turn: s}
}

func (e *muxEnv) dialTLS(t testing.TB, alpn ...string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: alpn}) //nolint:gosec // test certificate
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// allocate makes a TURN client over TLS on the mux (offering alpn) and
// allocates.
func (e *muxEnv) allocate(t testing.TB, alpn ...string) (*pionturn.Client, net.PacketConn) {
	t.Helper()
	return e.allocateOn(t, e.dialTLS(t, alpn...))
}

// allocateOn allocates over c with fresh credentials.
func (e *muxEnv) allocateOn(t testing.TB, c net.Conn) (*pionturn.Client, net.PacketConn) {
	t.Helper()
	u, p := e.turn.Credentials("alice", time.Hour)
	conn := pionturn.NewSTUNConn(c)
	cl, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: e.addr, Username: u, Password: p,
		Conn: conn, LoggerFactory: quietPion})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	relay, err := cl.Allocate()
	if err != nil {
		t.Fatalf("allocate over the mux: %v", err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	return cl, relay
}

// TestMuxSplitsOnePort: on one port, TURN clients with and without ALPN
// allocate and relay, HTTP clients with and without ALPN get the page, a
// silent client is closed, and plain HTTP is told to use TLS.
func TestMuxSplitsOnePort(t *testing.T) {
	e := startMux(t, 500*time.Millisecond)
	for _, alpn := range [][]string{{ALPNTURN}, nil} {
		cl, relay := e.allocate(t, alpn...)
		pc, peer := allocate(t, e.turn, "udp", "bob")
		if err := cl.CreatePermission(peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if err := pc.CreatePermission(relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		exchange(t, relay, peer, []byte("to the peer"))
		exchange(t, peer, relay, []byte("from the peer"))
	}
	for _, alpn := range [][]string{{"http/1.1"}, nil} {
		c := e.dialTLS(t, alpn...)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET over the mux (ALPN %v): %v", alpn, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
		if resp.StatusCode != 200 || string(body) != "page" {
			t.Fatalf("GET (ALPN %v): %d %q", alpn, resp.StatusCode, body)
		}
	}

	silent := e.dialTLS(t)
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("a silent client: read %v, want the server to close it after its timeout", err)
	}

	plain, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	io.WriteString(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(plain)
	if !strings.Contains(string(answer), "400 Bad Request") {
		t.Fatalf("plain HTTP got %q", answer)
	}

	want := MuxStats{HTTPByALPN: 1, HTTPBySniff: 1, TURNByALPN: 1, TURNBySniff: 1, Failed: 2}
	if st := e.mux.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestMuxKeepsBytes: the bytes read to decide reach the server, even
// when the client writes them one at a time.
func TestMuxKeepsBytes(t *testing.T) {
	e := startMux(t, 5*time.Second)
	c := e.dialTLS(t)
	for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") {
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET written bytewise: %v %v", resp, err)
	}
}

func TestNewMuxNeedsCert(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := NewMux(ln, MuxConfig{TLS: &tls.Config{}}); !errors.Is(err, ErrTLSConfig) {
		t.Fatalf("NewMux without a certificate: %v, want ErrTLSConfig", err)
	}
}

// TestMuxConnectionsGated: connections through the Mux count against the
// TURN server's per-address cap like any other.
func TestMuxConnectionsGated(t *testing.T) {
	e := startMux(t, 5*time.Second, Config{AllowLoopback: true, MaxConnsPerAddr: 1})
	first := e.dialTLS(t, ALPNTURN)
	e.allocateOn(t, first) // the first holds the address's one slot
	second := e.dialTLS(t, ALPNTURN)
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a second connection from the address: read %v, want it closed at the cap", err)
	}
}
