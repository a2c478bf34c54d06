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
