// Package clientaddr names the unit per-address limits apply to, shared by
// the signaling server and the TURN server so both count a client alike.
package clientaddr

import (
	"net"
	"net/netip"
)

// Key is the unit limits apply to for a remote address ("host:port" or a
// bare host): an IPv4 address (IPv4-mapped IPv6 included), or an IPv6 /64
// (one host usually holds a whole /64). Anything else is its own key.
func Key(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Local reports whether key (a Key, or any address) is a loopback, private
// (RFC 1918, fc00::/7) or link-local unicast address or /64: a client on
// this machine or its LAN. Carrier-grade NAT space (100.64.0.0/10) is not
// local: many subscribers share each of its addresses.
func Local(key string) bool {
	a, err := netip.ParseAddr(key)
	if err != nil {
		p, perr := netip.ParsePrefix(key)
		if perr != nil {
			return false
		}
		if p.Contains(netip.IPv6Loopback()) {
			return true // ::1's key is ::/64
		}
		a = p.Addr()
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast()
}
