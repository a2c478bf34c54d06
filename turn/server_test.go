package turn

import (
	"errors"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloakroom/internal/auth"
)

func TestAllocateAndRelay(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"udp", "udp"}, {"tcp", "udp"}, {"tcp", "tcp"}, {"tls", "udp"},
	} {
		t.Run(tc.a+"-"+tc.b, func(t *testing.T) {
			t.Parallel()
			s, _ := startServer(t, Config{AllowLoopback: true, TLSAddr: "127.0.0.1:0", TLSConfig: testTLS(t)})
			ca, ra := allocate(t, s, tc.a, "alice")
			cb, rb := allocate(t, s, tc.b, "bob")
			for _, r := range []net.PacketConn{ra, rb} {
				u := r.LocalAddr().(*net.UDPAddr)
				if !u.IP.Equal(net.IPv4(127, 0, 0, 1)) || u.Port < DefaultRelayPortMin {
					t.Fatalf("relay address %v: want 127.0.0.1 and a port in the relay range", u)
				}
			}
			// Permissions on both sides first: a first datagram can
			// otherwise overtake the permission it needs.
			if err := ca.CreatePermission(rb.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if err := cb.CreatePermission(ra.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			exchange(t, ra, rb, []byte("hello from "+tc.a))
			exchange(t, rb, ra, []byte("hello from "+tc.b))
			st := s.Stats()
			if st.Allocations != 2 || st.BytesRelayed == 0 {
				t.Fatalf("stats %+v: want 2 allocations and relayed bytes", st)
			}
		})
	}
}

func TestCredentialsRefused(t *testing.T) {
	now := time.Now()
	srvNow := func() time.Time { return now }
	past, pastPW := auth.MintTURN(testSecret, "bob", time.Minute, now.Add(-2*time.Minute))
	good, goodPW := auth.MintTURN(testSecret, "bob", time.Hour, now)
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", good, "not-the-password"},
		{"other secret", good, auth.TURNPassword([]byte("other"), good)},
		{"expired", past, pastPW},
		{"no expiry", "bob", auth.TURNPassword(testSecret, "bob")},
		{"bad expiry", "12x:bob", auth.TURNPassword(testSecret, "12x:bob")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, transport := range []string{"udp", "tcp"} {
				s, _ := startServer(t, Config{Now: srvNow})
				_, err := dialTURN(t, s, transport, tc.user, tc.pass).Allocate()
				if code := errorCode(err); code != 401 {
					t.Fatalf("%s: Allocate error %v (code %d), want 401", transport, err, code)
				}
				if st := s.Stats(); st.AuthRefused == 0 || st.Allocations != 0 {
					t.Fatalf("%s: stats %+v", transport, st)
				}
			}
		})
	}
	t.Run("server clock past expiry", func(t *testing.T) {
		t.Parallel()
		s, _ := startServer(t, Config{Now: func() time.Time { return now.Add(2 * time.Hour) }})
		_, err := dialTURN(t, s, "udp", good, goodPW).Allocate()
		if code := errorCode(err); code != 401 {
			t.Fatalf("Allocate error %v, want 401", err)
		}
	})
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		s, _ := startServer(t, Config{Now: srvNow})
		if _, err := dialTURN(t, s, "udp", good, goodPW).Allocate(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPeerPolicyOnTheWire drives CreatePermission and ChannelBind with a raw
// STUN client: every refused class gets 403, allowed peers succeed.
func TestPeerPolicyOnTheWire(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{})
	c := newRawClient(t, s)
	c.allocate(t)
	refused := []string{"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.5", "100.64.0.1",
		"169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255"}
	for i, ip := range refused {
		peer := &net.UDPAddr{IP: net.ParseIP(ip), Port: 5000}
		if code := c.createPermission(t, peer); code != 403 {
			t.Errorf("CreatePermission %s: code %d, want 403", ip, code)
		}
		if code := c.channelBind(t, peer, uint16(0x4000+i)); code != 403 {
			t.Errorf("ChannelBind %s: code %d, want 403", ip, code)
		}
	}
	peer := &net.UDPAddr{IP: net.ParseIP("8.8.8.8"), Port: 5000}
	if code := c.createPermission(t, peer); code != 0 {
		t.Errorf("CreatePermission 8.8.8.8: code %d, want success", code)
	}
	if code := c.channelBind(t, peer, 0x4fff); code != 0 {
		t.Errorf("ChannelBind 8.8.8.8: code %d, want success", code)
	}
	if st := s.Stats(); st.PermissionRefused != uint64(2*len(refused)) {
		t.Errorf("PermissionRefused = %d, want %d", st.PermissionRefused, 2*len(refused))
	}
}

func TestTCPRelayRefused(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{})
	c := newRawClient(t, s)
	if code := c.allocateTransport(t, 6); code != 442 {
		t.Fatalf("Allocate TCP relay: code %d, want 442", code)
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	s, ev := startServer(t, Config{MaxAllocationsPerUser: 1, MaxAllocations: 2, AllowLoopback: true})
	_, first := allocate(t, s, "udp", "alice")
	u, p := s.Credentials("alice", time.Hour)
	if _, err := dialTURN(t, s, "tcp", u, p).Allocate(); errorCode(err) != 486 {
		t.Fatalf("second allocation of alice: %v, want 486", err)
	}
	allocate(t, s, "udp", "bob")
	u, p = s.Credentials("carol", time.Hour)
	if _, err := dialTURN(t, s, "udp", u, p).Allocate(); errorCode(err) != 486 {
		t.Fatalf("allocation over the total cap: %v, want 486", err)
	}
	if st := s.Stats(); st.QuotaRefused != 2 || st.Allocations != 2 {
		t.Fatalf("stats %+v", st)
	}
	if err := first.Close(); err != nil { // Refresh with lifetime 0
		t.Fatal(err)
	}
	ev.waitFor(t, "alice's allocation deleted", func(_, d int) bool { return d == 1 })
	allocate(t, s, "tcp", "alice")
}

func TestTCPCloseFreesQuota(t *testing.T) {
	t.Parallel()
	s, ev := startServer(t, Config{MaxAllocationsPerUser: 1})
	u, p := s.Credentials("alice", time.Hour)
	cl := dialTURN(t, s, "tcp", u, p)
	if _, err := cl.Allocate(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	for c := range s.conns { // the client's connection drops
		_ = c.Conn.Close()
	}
	s.mu.Unlock()
	ev.waitFor(t, "allocation deleted", func(_, d int) bool { return d == 1 })
	allocate(t, s, "udp", "alice")
}

func TestURLsAndCredentials(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{TLSAddr: "127.0.0.1:0", TLSConfig: testTLS(t), Now: func() time.Time { return time.Unix(1000, 0) }})
	port, tls := s.udpAddr.Port, s.tlsPort
	want := []string{
		"turn:127.0.0.1:" + strconv.Itoa(port) + "?transport=udp",
		"turn:127.0.0.1:" + strconv.Itoa(port) + "?transport=tcp",
		"turns:127.0.0.1:" + strconv.Itoa(tls) + "?transport=tcp",
	}
	if got := s.URLs(""); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("URLs(\"\") = %v, want %v", got, want)
	}
	if got := s.URLs("::1")[0]; got != "turn:[::1]:"+strconv.Itoa(port)+"?transport=udp" {
		t.Fatalf("URLs(::1)[0] = %s", got)
	}
	u, p := s.Credentials("m1", time.Minute)
	if u != "1060:m1" || auth.VerifyTURN(testSecret, u, p, time.Unix(1059, 0)) != nil {
		t.Fatalf("Credentials = %q, %q", u, p)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"no secret", Config{}, ErrNoSecret},
		{"ipv6 public", Config{Secret: testSecret, PublicIP: net.ParseIP("2001:db8::1")}, ErrPublicIP},
		{"tls without cert", Config{Secret: testSecret, TLSAddr: "127.0.0.1:0"}, ErrTLSConfig},
		{"port range", Config{Secret: testSecret, RelayPortMin: 60000, RelayPortMax: 50000}, ErrPortRange},
		{"negative cap", Config{Secret: testSecret, MaxAllocations: -1}, ErrAllocationCap},
	} {
		if _, err := New(tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("%s: New error %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Secret: testSecret, AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	_, ra := allocate(t, s, "udp", "alice")
	_, rb := allocate(t, s, "tcp", "bob")
	_, _ = ra, rb
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if st := s.Stats(); st.Allocations != 0 {
		t.Fatalf("allocations after Close: %d", st.Allocations)
	}
}

// TestCloseStopsGoroutines: after Close no goroutine of pion's server or of
// ours is left, with allocations open on every transport.
func TestCloseStopsGoroutines(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Secret: testSecret, AllowLoopback: true,
		TLSAddr: "127.0.0.1:0", TLSConfig: testTLS(t)})
	if err != nil {
		t.Fatal(err)
	}
	allocate(t, s, "udp", "a")
	allocate(t, s, "tcp", "b")
	allocate(t, s, "tls", "c")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A goroutine's exit has no event to wait on: look a few times, as
	// goleak does. Close has waited for every read loop and allocation, so
	// what is left is at most returning.
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := serverGoroutines()
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", left)
		}
		runtime.Gosched()
	}
}

func serverGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, mark := range []string{"turn/v4.(*Server)", "turn/v4/internal/allocation", "turn/v4/internal/server", "cloakroom/turn.(*gated"} {
			if strings.Contains(g, mark) {
				left = append(left, g)
				break
			}
		}
	}
	return strings.Join(left, "\n\n")
}

// TestPublicIPBehindNAT: a PublicIP that is not on this host is announced
// while relays listen on every interface.
func TestPublicIPBehindNAT(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{PublicIP: net.ParseIP("203.0.113.7"), RelayPortMin: 50000, RelayPortMax: 50999})
	if got := relayBindIP(s.public); !got.Equal(net.IPv4zero) {
		t.Fatalf("relay bind address %v, want 0.0.0.0", got)
	}
	_, relay := allocate(t, s, "udp", "alice")
	u := relay.LocalAddr().(*net.UDPAddr)
	if !u.IP.Equal(net.ParseIP("203.0.113.7")) || u.Port < 50000 || u.Port > 50999 {
		t.Fatalf("relay address %v", u)
	}
	if !strings.HasPrefix(s.URLs("")[0], "turn:203.0.113.7:") {
		t.Fatalf("URLs %v", s.URLs(""))
	}
}

func TestDetectPublicIP(t *testing.T) {
	if got := detectPublicIP(net.ParseIP("192.0.2.1")); !got.Equal(net.ParseIP("192.0.2.1")) {
		t.Errorf("specific listener address: %v", got)
	}
	if got := detectPublicIP(net.ParseIP("::1")); !got.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("[::1]: %v", got)
	}
	got := detectPublicIP(net.IPv4zero)
	if got.To4() == nil || got.IsUnspecified() || got.IsLinkLocalUnicast() {
		t.Errorf("0.0.0.0: %v", got)
	}
	t.Logf("detected relay address for 0.0.0.0: %v", got)
}
