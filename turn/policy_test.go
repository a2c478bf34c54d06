package turn

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"cloakroom/internal/auth"
)

func TestPolicy(t *testing.T) {
	public := net.ParseIP("203.0.113.7")
	own := []netip.Addr{
		netip.MustParseAddr("198.51.100.9"), // another address of the server
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("192.168.1.20"),
		netip.MustParseAddr("fe80::1"),
		netip.MustParseAddr("203.0.113.7"),
	}
	type flags struct{ private, loopback bool }
	none, priv, loop, both := flags{}, flags{private: true}, flags{loopback: true}, flags{true, true}
	all := []flags{none, priv, loop, both}
	cases := []struct {
		ip      string
		allowed []flags
	}{
		// Loopback is the server's own host: refused unless it is the
		// PublicIP (see TestPolicyLoopbackPublic).
		{"127.0.0.1", nil},
		{"127.0.0.2", nil},
		{"::1", nil},
		{"::ffff:127.0.0.1", nil},
		{"10.0.0.1", []flags{priv, both}},
		{"192.168.1.5", []flags{priv, both}},
		{"172.16.0.1", []flags{priv, both}},
		{"172.31.255.255", []flags{priv, both}},
		{"100.64.0.1", []flags{priv, both}},
		{"fd00::1", []flags{priv, both}},
		{"169.254.169.254", nil},
		{"fe80::1", nil},
		{"0.0.0.0", nil},
		{"0.1.2.3", nil},
		{"::", nil},
		{"224.0.0.1", nil},
		{"239.255.255.250", nil},
		{"ff02::1", nil},
		{"255.255.255.255", nil},
		{"64:ff9b::a00:1", nil}, // NAT64 of 10.0.0.1
		{"2002:a00:1::", nil},   // 6to4 of 10.0.0.1
		{"8.8.8.8", all},
		{"172.32.0.1", all},
		{"2001:4860:4860::8888", all},
		{"203.0.113.7", all},  // the PublicIP: relays live there
		{"198.51.100.9", nil}, // the server's other address
		{"192.168.1.20", nil}, // own address: the private flag does not lift it
		{"203.0.113.8", all},  // a neighbour of the PublicIP
		{"::ffff:203.0.113.7", all},
	}
	for _, f := range all {
		cfg := &Config{AllowPrivate: f.private, AllowLoopback: f.loopback, RelayPortMin: 49152, RelayPortMax: 65535}
		p := newPolicy(cfg, public, own)
		for _, tc := range cases {
			want := false
			for _, a := range tc.allowed {
				want = want || a == f
			}
			if got := p.permit(nil, net.ParseIP(tc.ip)); got != want {
				t.Errorf("private=%v loopback=%v: permit(%s) = %v, want %v (%s)",
					f.private, f.loopback, tc.ip, got, want, p.refusal(netip.MustParseAddr(tc.ip).Unmap(), 0))
			}
		}
	}
}

// TestPolicyLoopbackPublic: tests on 127.0.0.1 announce relays there, and
// AllowLoopback lets clients relay to each other and to loopback peers.
func TestPolicyLoopbackPublic(t *testing.T) {
	for _, tc := range []struct {
		ip                string
		withFlag, without bool
	}{
		{"127.0.0.1", true, false},
		{"127.0.0.2", false, false}, // loopback but not the PublicIP
		{"::1", false, false},
		{"10.0.0.1", false, false},
		{"8.8.8.8", true, true},
	} {
		on := newPolicy(&Config{AllowLoopback: true}, net.ParseIP("127.0.0.1"), nil)
		off := newPolicy(&Config{}, net.ParseIP("127.0.0.1"), nil)
		if got := on.permit(nil, net.ParseIP(tc.ip)); got != tc.withFlag {
			t.Errorf("AllowLoopback: permit(%s) = %v, want %v", tc.ip, got, tc.withFlag)
		}
		if got := off.permit(nil, net.ParseIP(tc.ip)); got != tc.without {
			t.Errorf("no flags: permit(%s) = %v, want %v", tc.ip, got, tc.without)
		}
	}
}

func TestPolicyPublicPorts(t *testing.T) {
	cfg := &Config{RelayPortMin: 50000, RelayPortMax: 50100}
	p := newPolicy(cfg, net.ParseIP("203.0.113.7"), nil)
	pub := netip.MustParseAddr("203.0.113.7")
	for _, tc := range []struct {
		port int
		ok   bool
	}{{50000, true}, {50100, true}, {50050, true}, {53, false}, {3478, false}, {49999, false}, {50101, false}} {
		if got := p.refusal(pub, tc.port) == ""; got != tc.ok {
			t.Errorf("public port %d: allowed %v, want %v", tc.port, got, tc.ok)
		}
	}
	if p.refusal(netip.MustParseAddr("8.8.8.8"), 53) != "" {
		t.Error("other public peers: any port")
	}
	// A loopback or private PublicIP is allowed only with its flag, and
	// then on any port (members on the server's own host).
	for _, tc := range []struct {
		ip  string
		cfg Config
	}{
		{"127.0.0.1", Config{AllowLoopback: true}},
		{"192.168.1.20", Config{AllowPrivate: true}},
	} {
		tc.cfg.RelayPortMin, tc.cfg.RelayPortMax = 50000, 50100
		ip := netip.MustParseAddr(tc.ip)
		if why := newPolicy(&tc.cfg, net.ParseIP(tc.ip), nil).refusal(ip, 53); why != "" {
			t.Errorf("%s with its flag, port 53: refused (%s)", tc.ip, why)
		}
		if newPolicy(&Config{}, net.ParseIP(tc.ip), nil).refusal(ip, 50000) == "" {
			t.Errorf("%s without its flag: allowed", tc.ip)
		}
	}
}

// TestGatePortRule: with a public relay address, CreatePermission,
// ChannelBind and Send to another port of it are refused, so a client cannot
// reach a UDP service on the server's host through a relay's permission.
func TestGatePortRule(t *testing.T) {
	now := time.Now()
	cfg := &Config{RelayPortMin: 50000, RelayPortMax: 50100}
	g := &gate{realm: "cloakroom", secret: testSecret, now: func() time.Time { return now }, revoked: newRevocations(),
		policy: newPolicy(cfg, net.ParseIP("203.0.113.7"), nil), stats: &counters{}, log: slog.New(slog.DiscardHandler)}
	user, pass := auth.MintTURN(testSecret, "alice", time.Hour, now)
	creds := []stun.Setter{stun.NewUsername(user), stun.NewRealm("cloakroom"), stun.NewNonce("n"),
		stun.NewLongTermIntegrity(user, "cloakroom", pass), stun.Fingerprint}
	for _, tc := range []struct {
		peer string
		port int
		ok   bool
	}{{"203.0.113.7", 50000, true}, {"203.0.113.7", 53, false}, {"203.0.113.7", 3478, false}, {"8.8.8.8", 53, true}} {
		peer := &net.UDPAddr{IP: net.ParseIP(tc.peer), Port: tc.port}
		var m stun.Message
		send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
			stun.RawAttribute{Type: stun.AttrData, Value: []byte("x")}, peerAddr(peer), stun.Fingerprint)
		if _, drop := g.inspect(&m, send.Raw, nil); drop == tc.ok {
			t.Errorf("Send to %v: dropped %v", peer, drop)
		}
		for _, method := range []stun.Method{stun.MethodCreatePermission, stun.MethodChannelBind} {
			setters := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest), peerAddr(peer)}
			if method == stun.MethodChannelBind {
				setters = append(setters, channelNumber(0x4000))
			}
			req := stun.MustBuild(append(setters, creds...)...)
			reply, drop := g.inspect(&m, req.Raw, nil)
			if drop == tc.ok || (!tc.ok && replyCode(t, reply) != 403) {
				t.Errorf("%v to %v: dropped %v", method, peer, drop)
			}
		}
	}
}

func replyCode(t *testing.T, b []byte) int {
	t.Helper()
	m := &stun.Message{Raw: b}
	var code stun.ErrorCodeAttribute
	if m.Decode() != nil || code.GetFrom(m) != nil {
		t.Fatalf("bad reply %x", b)
	}
	return int(code.Code)
}
