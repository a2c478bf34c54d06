package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"cloakroom/turn"
)

// mainPortTURN is TURN over TLS on the HTTPS port (--turn-tls-mux): the
// Mux's TURN listener, and the port for the turns: URL.
type mainPortTURN struct {
	ln   net.Listener
	host string // for a client whose Host says nothing usable
	port string
}

// newMainMux shares ln between HTTPS (WSS) and TURN over TLS when TLS is
// on, the embedded TURN server runs and --turn-tls-mux is on; else it
// returns nils. Serving ln's HTTPS then goes through the Mux's HTTP().
func newMainMux(cfg serveConfig, ln net.Listener, tlsCfg *tls.Config, log *slog.Logger) (*turn.Mux, *mainPortTURN, error) {
	if tlsCfg == nil || !cfg.TurnTLSMux || cfg.TurnPort == 0 || len(cfg.TurnExternal) > 0 {
		return nil, nil, nil
	}
	m, err := turn.NewMux(ln, turn.MuxConfig{TLS: tlsCfg, Timeout: cfg.Sig.ReadHeaderTimeout, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("serve: %w", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	return m, &mainPortTURN{ln: m.TURN(), host: pageHost(host), port: port}, nil
}

// url is the turns: URL of the HTTPS port for a client that reached the
// server as reqHost (its request's Host): the same name, so the
// certificate matches, and the same port, which its network passes.
// Without a port in reqHost the client used HTTPS's default, 443; when
// reqHost is empty or not a plain name or address, the listener's.
func (m *mainPortTURN) url(reqHost string) string {
	host, port, ok := splitHost(reqHost)
	if !ok {
		host, port = m.host, m.port
	}
	return "turns:" + net.JoinHostPort(host, port) + "?transport=tcp"
}

// splitHost parses an HTTP Host: a DNS name or an IP address, and a port
// (443 when it has none).
func splitHost(s string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "443"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", "", false
	}
	if net.ParseIP(host) == nil && !dnsName(host) {
		return "", "", false
	}
	return host, port, true
}

// dnsName reports whether s is a host name of letters, digits and
// hyphens (LDH labels), at most 253 bytes, with an optional final dot.
func dnsName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
