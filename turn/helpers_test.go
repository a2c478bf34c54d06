package turn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	pionturn "github.com/pion/turn/v4"

	"cloakroom/internal/pionlog"
)

var testSecret = []byte("test-secret-0123456789")

// events records the allocation events of a test server; tests wait on it
// instead of sleeping.
type events struct {
	mu               sync.Mutex
	created, deleted int
	changed          chan struct{} // closed and replaced on every event
}

func (e *events) hook(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch kind {
	case "created":
		e.created++
	case "deleted":
		e.deleted++
	}
	close(e.changed)
	e.changed = make(chan struct{})
}

// waitFor waits until ok(created, deleted) holds.
func (e *events) waitFor(t testing.TB, what string, ok func(created, deleted int) bool) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		e.mu.Lock()
		c, d, changed := e.created, e.deleted, e.changed
		e.mu.Unlock()
		if ok(c, d) {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s (created %d, deleted %d)", what, c, d)
		}
	}
}

// startServer starts a server on 127.0.0.1 with a random port; cfg's zero
// fields get test defaults.
func startServer(t testing.TB, cfg Config) (*Server, *events) {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ev := &events{changed: make(chan struct{})}
	s, err := newServer(cfg, ev.hook)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, ev
}

// testLogger logs warnings and errors into the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}

// quietPion silences pion's client logs.
var quietPion = pionlog.New(nil, slog.LevelError)

// dialTURN makes a pion TURN client over "udp", "tcp" or "tls".
func dialTURN(t testing.TB, s *Server, transport, username, password string) *pionturn.Client {
	t.Helper()
	var conn net.PacketConn
	addr := s.Addr().String()
	switch transport {
	case "udp":
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		tuneUDP(c)
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	case "tls":
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	}
	cl, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: addr, Username: username, Password: password,
		Conn: conn, LoggerFactory: quietPion,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		_ = conn.Close()
	})
	return cl
}

// allocate makes a client with fresh credentials for user and allocates.
func allocate(t testing.TB, s *Server, transport, user string) (*pionturn.Client, net.PacketConn) {
	t.Helper()
	u, p := s.Credentials(user, time.Hour)
	cl := dialTURN(t, s, transport, u, p)
	relay, err := cl.Allocate()
	if err != nil {
		t.Fatalf("allocate (%s, %s): %v", transport, user, err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	return cl, relay
}

// errorCode returns the STUN error code in err, or 0.
func errorCode(err error) int {
	var p *stun.TurnError
	if errors.As(err, &p) {
		return int(p.ErrorCodeAttr.Code)
	}
	var v stun.TurnError
	if errors.As(err, &v) {
		return int(v.ErrorCodeAttr.Code)
	}
	return 0
}

// testTLS returns a server config with a fresh self-signed certificate.
func testTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cloakroom-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// exchange sends payload from a to b's relay address and checks it arrives.
func exchange(t testing.TB, a, b net.PacketConn, payload []byte) {
	t.Helper()
	if _, err := a.WriteTo(payload, b.LocalAddr()); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 2048)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := b.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf[:n]) != string(payload) {
		t.Fatalf("got %q, want %q", buf[:n], payload)
	}
	if from.String() != a.LocalAddr().String() {
		t.Fatalf("from %v, want %v", from, a.LocalAddr())
	}
}
