package turn

import (
	"net"
	"net/netip"
)

// Address classes the peer policy refuses whatever the flags say: nothing
// behind them is a WebRTC peer, and some are dangerous to reach from inside
// the server's network (169.254.169.254 is the cloud metadata service).
var alwaysRefused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local, cloud metadata
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, 255.255.255.255 broadcast
	netip.MustParsePrefix("::/128"),          // unspecified
	netip.MustParsePrefix("fe80::/10"),       // link-local
	netip.MustParsePrefix("ff00::/8"),        // multicast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (SIIT)
}

// Private ranges, refused unless Config.AllowPrivate.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT (also Tailscale)
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking, used inside some networks
	netip.MustParsePrefix("fc00::/7"),      // unique local
}

// policy decides which peers a client may relay to. It is built once in New
// and read-only afterwards.
type policy struct {
	allowLoopback bool
	allowPrivate  bool
	// public is the relay address announced to clients (Config.PublicIP).
	// Relays live there, so two clients of this server relaying to each
	// other have it as their peer.
	public netip.Addr
	// own holds the server's other addresses (every interface address),
	// refused as peers even when a flag allows their class; so is every
	// loopback address other than public. AllowLoopback therefore matters
	// only when public is a loopback address (tests on 127.0.0.1).
	own map[netip.Addr]bool
	// When public is itself a public address, only ports of the relay
	// range are allowed on it (relay-to-relay), so a client cannot reach
	// another UDP service bound there. When public is loopback or private,
	// the operator has allowed that whole class with a flag, and members
	// on the server's own host are a real case: any port.
	portRule           bool
	relayMin, relayMax int
}

func newPolicy(cfg *Config, public net.IP, own []netip.Addr) *policy {
	p := &policy{
		allowLoopback: cfg.AllowLoopback,
		allowPrivate:  cfg.AllowPrivate,
		public:        toAddr(public),
		own:           make(map[netip.Addr]bool, len(own)),
		relayMin:      cfg.RelayPortMin,
		relayMax:      cfg.RelayPortMax,
	}
	for _, a := range own {
		if a = a.Unmap(); a != p.public {
			p.own[a] = true
		}
	}
	p.portRule = p.classify(p.public) == "" && !p.public.IsLoopback() && !isPrivate(p.public)
	return p
}

// permit is pion's PermissionHandler: it sees only the peer IP.
func (p *policy) permit(_ net.Addr, peer net.IP) bool {
	return p.refusal(toAddr(peer), 0) == ""
}

// refusal returns why relaying to ip:port is refused, or "" when it is
// allowed. Port 0 means "any port" (pion's handler has no port): the port
// rule is then left to the gate.
func (p *policy) refusal(ip netip.Addr, port int) string {
	if why := p.classify(ip); why != "" {
		return why
	}
	if ip == p.public {
		if p.portRule && port != 0 && (port < p.relayMin || port > p.relayMax) {
			return "server address outside the relay port range"
		}
		return ""
	}
	if p.own[ip] || ip.IsLoopback() { // all of 127.0.0.0/8 is this host
		return "server's own address"
	}
	return ""
}

// classify returns the refused class of ip under the flags, or "".
func (p *policy) classify(ip netip.Addr) string {
	switch {
	case !ip.IsValid() || ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		if p.allowLoopback {
			return ""
		}
		return "loopback"
	case ip.IsMulticast():
		return "multicast"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	}
	for _, r := range alwaysRefused {
		if r.Contains(ip) {
			return "reserved"
		}
	}
	if isPrivate(ip) && !p.allowPrivate {
		return "private"
	}
	return ""
}

func isPrivate(ip netip.Addr) bool {
	for _, r := range privateRanges {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

// toAddr converts a net.IP to an unmapped netip.Addr (invalid for nil).
func toAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
