package turn

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// rawClient speaks TURN over UDP request by request, so tests can see the
// exact error code of each answer (pion's client hides ChannelBind errors).
type rawClient struct {
	conn         *net.UDPConn
	server       *net.UDPAddr
	user, pass   string
	realm, nonce string
}

func newRawClient(t testing.TB, s *Server) *rawClient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	u, p := s.Credentials("raw", time.Hour)
	return &rawClient{conn: conn, server: s.udpAddr, user: u, pass: p}
}

type setterFunc func(*stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }

func peerAddr(a *net.UDPAddr) stun.Setter {
	return setterFunc(func(m *stun.Message) error {
		x := stun.XORMappedAddress{IP: a.IP, Port: a.Port}
		return x.AddToAs(m, stun.AttrXORPeerAddress)
	})
}

func requestedTransport(proto byte) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{proto, 0, 0, 0}}
}

func channelNumber(n uint16) stun.Setter {
	v := make([]byte, 4)
	binary.BigEndian.PutUint16(v, n)
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: v}
}

// do sends an authenticated request (learning realm and nonce from the
// first 401) and returns the answer's error code, 0 for success.
func (c *rawClient) do(t testing.TB, method stun.Method, attrs ...stun.Setter) int {
	t.Helper()
	for range 3 {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
		if c.nonce != "" {
			setters = append(setters, stun.NewUsername(c.user), stun.NewRealm(c.realm),
				stun.NewNonce(c.nonce), stun.NewLongTermIntegrity(c.user, c.realm, c.pass))
		}
		res := c.roundTrip(t, stun.MustBuild(append(setters, stun.Fingerprint)...))
		if res.Type.Class == stun.ClassSuccessResponse {
			return 0
		}
		var code stun.ErrorCodeAttribute
		if code.GetFrom(res) != nil {
			return -1
		}
		if code.Code == stun.CodeStaleNonce || code.Code == stun.CodeUnauthorized && c.nonce == "" {
			var realm stun.Realm
			var nonce stun.Nonce
			if realm.GetFrom(res) != nil || nonce.GetFrom(res) != nil {
				t.Fatalf("%v without realm or nonce", code)
			}
			c.realm, c.nonce = realm.String(), nonce.String()
			continue
		}
		return int(code.Code)
	}
	t.Fatal("no answer after three tries")
	return 0
}

func (c *rawClient) roundTrip(t testing.TB, req *stun.Message) *stun.Message {
	t.Helper()
	if _, err := c.conn.WriteTo(req.Raw, c.server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			t.Fatalf("%v: %v", req.Type, err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if res.Decode() == nil && res.TransactionID == req.TransactionID {
			return res
		}
	}
}

func (c *rawClient) allocate(t testing.TB) {
	t.Helper()
	if code := c.allocateTransport(t, protoUDP); code != 0 {
		t.Fatalf("Allocate: code %d", code)
	}
}

func (c *rawClient) allocateTransport(t testing.TB, proto byte) int {
	t.Helper()
	return c.do(t, stun.MethodAllocate, requestedTransport(proto))
}

func (c *rawClient) createPermission(t testing.TB, peer *net.UDPAddr) int {
	t.Helper()
	return c.do(t, stun.MethodCreatePermission, peerAddr(peer))
}

func (c *rawClient) channelBind(t testing.TB, peer *net.UDPAddr, ch uint16) int {
	t.Helper()
	return c.do(t, stun.MethodChannelBind, channelNumber(ch), peerAddr(peer))
}

// send sends a Send indication (no answer).
func (c *rawClient) send(t testing.TB, peer *net.UDPAddr, data []byte) {
	t.Helper()
	m := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		stun.RawAttribute{Type: stun.AttrData, Value: data}, peerAddr(peer), stun.Fingerprint)
	if _, err := c.conn.WriteTo(m.Raw, c.server); err != nil {
		t.Fatal(err)
	}
}
