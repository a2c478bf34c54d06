package signaling

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"cloakroom/internal/clientaddr"
	"cloakroom/internal/protocol"
)

// serveWS upgrades GET /ws and hands the connection to a goroutine of its
// own (owned by the server: Close waits for it), so net/http's request,
// response and buffers are freed at once rather than held for the
// connection's lifetime.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.accept(w, r, func() (wire, error) {
		ws, err := s.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return nil, err // the upgrader has answered
		}
		return wsWire{ws}, nil
	})
}

// accept opens a connection (a WebSocket upgrade, or an HTTP fallback
// session) within the server's and the address's caps and serves it.
// open answers the request itself, also when it fails.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, open func() (wire, error)) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	handedOff := false
	defer func() {
		if !handedOff {
			s.wg.Done()
		}
	}()

	addr := s.addrs.open(clientaddr.Key(r.RemoteAddr))
	if addr == nil {
		// Far over the per-address cap: not worth an upgrade.
		s.limited.add(LimitConnsPerAddr)
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		return
	}
	ws, err := open()
	if err != nil {
		s.addrs.close(addr, false)
		s.log.Debug("signaling: upgrade failed", "err", err)
		return
	}
	s.accepted.Add(1)
	handedOff = true
	go s.run(ws, addr, r.Host)
}

// run serves one connection (a WebSocket, or an HTTP fallback session),
// which reached the server as host, until it ends.
func (s *Server) run(ws wire, addr *addrState, host string) {
	defer s.wg.Done()
	c := newConn(s, ws)
	c.addr, c.host = addr, host
	refusal := s.admit(c)
	c.admitted = refusal == nil
	c.serve(refusal)
}

// admit registers c, or returns why it may not stay.
func (s *Server) admit(c *conn) *closeReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return goingAway()
	case len(s.conns) >= s.cfg.MaxConns:
		s.limited.add(LimitConns)
		return refuse(protocol.CodeTooMany, "too many connections to this server; try again later")
	}
	if l, ok := s.addrs.admit(c.addr); !ok {
		s.limited.add(l)
		if l == LimitJoinRate {
			return refuse(protocol.CodeRateLimited, "too many new connections from your address; try again in a few seconds")
		}
		return refuse(protocol.CodeTooMany, fmt.Sprintf("too many connections from your address (at most %d); close some and try again", s.cfg.MaxConnsPerAddr))
	}
	s.conns[c] = struct{}{}
	return nil
}

// checkOrigin allows requests without Origin (CLI clients), from the
// server's own host, or from Config.AllowedOrigins.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	origin = strings.TrimSuffix(origin, "/")
	for _, a := range s.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	s.log.Debug("signaling: origin refused", "origin", origin)
	return false
}
