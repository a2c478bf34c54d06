package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// handMinted computes TURN REST credentials here, without internal/auth,
// as any tool sharing the secret would: username "<unix expiry>:<id>",
// password base64(HMAC-SHA1(secret, username)).
func handMinted(secret []byte, id string, expiry time.Time) (user, pass string) {
	user = strconv.FormatInt(expiry.Unix(), 10) + ":" + id
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(user))
	return user, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TestCredentialsMintedOutside: credentials made outside the project from
// the shared secret allocate and relay (pion client and coturn's uclient);
// expired ones are refused by both.
func TestCredentialsMintedOutside(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{AllowLoopback: true})
	user, pass := handMinted(testSecret, "outsider", time.Now().Add(time.Hour))
	for _, transport := range []string{"udp", "tcp"} {
		if _, err := dialTURN(t, s, transport, user, pass).Allocate(); err != nil {
			t.Fatalf("pion client over %s with hand-minted credentials: %v", transport, err)
		}
	}
	for _, args := range [][]string{{}, {"-t"}} {
		out, code := uclient(t, s, s.udpAddr.Port, append(args, "-u", user, "-w", pass, "-y", "-c", "-n", "20", "-l", "500", "-m", "1", "-z", "1")...)
		if sent, recv := sentReceived(t, out); code != 0 || sent != 40 || recv == 0 {
			t.Fatalf("uclient %v: exit %d, sent %d, received %d\n%s", args, code, sent, recv, out)
		}
	}

	old, oldPass := handMinted(testSecret, "outsider", time.Now().Add(-time.Second))
	if _, err := dialTURN(t, s, "udp", old, oldPass).Allocate(); errorCode(err) != 401 {
		t.Fatalf("expired hand-minted credentials: %v, want 401", err)
	}
	out, code := uclient(t, s, s.udpAddr.Port, "-u", old, "-w", oldPass, "-y", "-c", "-n", "5", "-m", "1")
	if code == 0 || !strings.Contains(out, "Cannot complete Allocation") {
		t.Fatalf("uclient with expired credentials: exit %d\n%s", code, out)
	}
}

// refusedPeers has one address of every class the policy refuses with the
// default flags (no AllowPrivate, no AllowLoopback), IPv4 and IPv6.
var refusedPeers = []struct{ ip, class string }{
	{"0.0.0.1", "this network 0/8"},
	{"169.254.169.254", "link-local, cloud metadata"},
	{"192.0.0.8", "IETF protocol assignments 192.0.0/24"},
	{"224.0.0.1", "multicast"},
	{"239.255.255.250", "multicast (SSDP)"},
	{"240.0.0.1", "reserved 240/4"},
	{"255.255.255.255", "broadcast"},
	{"10.0.0.1", "private 10/8"},
	{"172.16.0.1", "private 172.16/12"},
	{"172.31.255.254", "private 172.16/12, top"},
	{"192.168.1.5", "private 192.168/16"},
	{"100.64.0.1", "CGNAT 100.64/10"},
	{"198.18.0.1", "benchmarking 198.18/15"},
	{"127.0.0.1", "loopback"},
	{"127.1.2.3", "loopback, not 127.0.0.1"},
	{"::", "unspecified"},
	{"::1", "loopback"},
	{"fe80::1", "link-local"},
	{"ff02::1", "multicast"},
	{"64:ff9b::a00:1", "NAT64 of 10.0.0.1"},
	{"64:ff9b:1::1", "local-use NAT64"},
	{"2002:a00:1::1", "6to4 of 10.0.0.1"},
	{"100::1", "discard-only"},
	{"::ffff:0:a00:1", "IPv4-translated"},
	{"fc00::1", "unique local"},
	{"fd12:3456::1", "unique local"},
	{"::ffff:10.0.0.1", "IPv4-mapped private"},
	{"::ffff:169.254.169.254", "IPv4-mapped metadata"},
}

// ownAddress is a non-loopback address of this host, if it has one.
func ownAddress(t *testing.T) string {
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				return ipn.IP.String()
			}
		}
	}
	t.Log("no non-loopback IPv4 address: the server's-own-address case is not checked")
	return ""
}

// TestEveryRefusedClassOnTheWire: a raw TURN client gets 403 for every
// refused class, on CreatePermission and on ChannelBind.
func TestEveryRefusedClassOnTheWire(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{})
	c := newRawClient(t, s)
	c.allocate(t)
	peers := refusedPeers
	if own := ownAddress(t); own != "" {
		peers = append(peers, struct{ ip, class string }{own, "the server's own interface address"})
	}
	for i, p := range peers {
		peer := &net.UDPAddr{IP: net.ParseIP(p.ip), Port: 50000}
		if code := c.createPermission(t, peer); code != 403 {
			t.Errorf("CreatePermission %s (%s): code %d, want 403", p.ip, p.class, code)
		}
		if code := c.channelBind(t, peer, uint16(0x4000+i)); code != 403 {
			t.Errorf("ChannelBind %s (%s): code %d, want 403", p.ip, p.class, code)
		}
	}
	if st := s.Stats(); st.PermissionRefused != uint64(2*len(peers)) {
		t.Errorf("PermissionRefused = %d, want %d", st.PermissionRefused, 2*len(peers))
	}
}

// TestCoturnClientEveryRefusedClass: coturn's uclient, an independent TURN
// client, is refused with 403 on ChannelBind and on CreatePermission for
// every IPv4 class (uclient relays over IPv4 only here).
func TestCoturnClientEveryRefusedClass(t *testing.T) {
	peers := []string{}
	for _, p := range refusedPeers {
		if a := netip.MustParseAddr(p.ip); a.Is4() {
			peers = append(peers, p.ip)
		}
	}
	if own := ownAddress(t); own != "" {
		peers = append(peers, own)
	}
	for _, peer := range peers {
		for _, mode := range []struct{ name, flag, want string }{
			{"ChannelBind", "", "channel bind: error 403 (Forbidden IP)"},
			{"CreatePermission", "-s", "create permission error 403 (Forbidden IP)"},
		} {
			t.Run(peer+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				s, _ := startServer(t, Config{})
				u, p := s.Credentials("alice", time.Hour)
				args := []string{"-u", u, "-w", p, "-c", "-e", peer, "-n", "3", "-m", "1"}
				if mode.flag != "" {
					args = append(args, mode.flag)
				}
				out, code := uclient(t, s, s.udpAddr.Port, args...)
				if code == 0 || !strings.Contains(out, mode.want) {
					t.Fatalf("exit %d, want failure with %q:\n%s", code, mode.want, out)
				}
			})
		}
	}
}
