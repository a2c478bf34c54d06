package protocol

import (
	"fmt"
	"strings"
)

// Transport is the path a user asks for (`--transport`, the page's
// `?transport=`): the fallback ladder, or one forced rung.
type Transport string

// Transports.
const (
	TransportAuto  Transport = "auto"  // direct, then TURN, then the relay, per recipient
	TransportP2P   Transport = "p2p"   // direct data channel only
	TransportTURN  Transport = "turn"  // data channel relayed by TURN only
	TransportRelay Transport = "relay" // the server's store-and-forward relay only
)

// Transports lists every transport, in the order users see them.
var Transports = []Transport{TransportAuto, TransportP2P, TransportTURN, TransportRelay}

// ParseTransport returns the transport named s ("" is auto).
func ParseTransport(s string) (Transport, error) {
	if s == "" {
		return TransportAuto, nil
	}
	for _, t := range Transports {
		if string(t) == s {
			return t, nil
		}
	}
	names := make([]string, len(Transports))
	for i, t := range Transports {
		names[i] = string(t)
	}
	return "", fmt.Errorf("transport %q: want %s", s, strings.Join(names, ", "))
}

// Ladder returns the peer-to-peer rungs the transport tries, best first,
// before (for auto) the relay. The relay transport has none.
func (t Transport) Ladder() []Mode {
	switch t {
	case TransportP2P:
		return []Mode{ModeDirect}
	case TransportTURN:
		return []Mode{ModeTURN}
	case TransportRelay:
		return nil
	}
	return []Mode{ModeDirect, ModeTURN}
}

// UsesRelay reports whether the transport may fall back to (or is) the relay.
func (t Transport) UsesRelay() bool { return t == TransportAuto || t == TransportRelay || t == "" }

// Mode is a rung of a peer-to-peer session: which ICE candidates it uses.
// An offer names its mode, and the answerer uses the same.
type Mode string

// Peer-connection modes.
const (
	ModeDirect Mode = "direct" // host and server-reflexive candidates (the TURN server as STUN)
	ModeTURN   Mode = "turn"   // relay candidates only, through the room's TURN server
)

// Path is the path a session in this mode takes until the selected
// candidate pair says more.
func (m Mode) Path() Path {
	if m == ModeTURN {
		return PathTURN
	}
	return PathDirect
}

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m == ModeDirect || m == ModeTURN }

// Path is the path a transfer took to one recipient, as shown to users.
type Path string

// Paths.
const (
	PathDirect  Path = "direct"
	PathTURN    Path = "TURN" // relayed by TURN, on the far side (its protocol not known here)
	PathTURNUDP Path = "TURN-UDP"
	PathTURNTCP Path = "TURN-TCP"
	PathTURNTLS Path = "TURN-TLS"
	PathRelay   Path = "relay"
)

// TURNPath is the path of a session relayed by TURN over proto
// ("udp", "tcp", "tls"; empty when not known: UDP).
func TURNPath(proto string) Path {
	switch strings.ToLower(proto) {
	case "tcp":
		return PathTURNTCP
	case "tls":
		return PathTURNTLS
	}
	return PathTURNUDP
}

// ConnState is a client's connection to the server, as shown to users.
type ConnState string

// Connection states.
const (
	StateConnected    ConnState = "connected"    // joined
	StateReconnecting ConnState = "reconnecting" // the connection dropped; trying again with backoff
	StateRestored     ConnState = "restored"     // joined again after a drop (or a server restart)
)
