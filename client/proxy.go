package client

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/stun/v3"

	"cloakroom/internal/protocol"
)

// HTTP proxies: the room connection (signaling and the relay, both on the
// WebSocket) and TURN over TCP or TLS go through an HTTP CONNECT tunnel
// when Options.Proxy names a proxy for their target. Nothing else can: a
// CONNECT proxy carries TCP only, so direct and TURN-UDP paths stay as they
// are (and fail on networks that pass nothing but the proxy).

// ProxyFunc picks the proxy for a target, like http.Transport's Proxy: the
// target is https://host:port for connections the client wraps in TLS
// itself (wss://, TURN over TLS) and http://host:port for the others (ws://,
// TURN over TCP). A nil URL means connect directly. Proxy URLs are
// http:// or https:// (TLS to the proxy); user:password in them is sent as
// Proxy-Authorization: Basic.
type ProxyFunc func(target *url.URL) (*url.URL, error)

// ProxyFromEnvironment is http.ProxyFromEnvironment: HTTPS_PROXY for https
// targets, HTTP_PROXY for http ones, NO_PROXY for exceptions (or their
// lower-case forms, read once per process), a proxy URL without a scheme
// taken as http://, and never a proxy for localhost or a loopback address.
func ProxyFromEnvironment(target *url.URL) (*url.URL, error) {
	return http.ProxyFromEnvironment(&http.Request{URL: target})
}

// ProxyDisplay is a proxy URL fit for a log: scheme and host, no
// credentials.
func ProxyDisplay(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if u.User != nil {
		s += " (with credentials)"
	}
	return s
}

// proxyDialer opens TCP connections, through a CONNECT tunnel when its
// ProxyFunc names a proxy for the target.
type proxyDialer struct {
	proxy ProxyFunc
	// forward dials TCP: to the proxy, or to the target without one.
	forward func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newProxyDialer(p ProxyFunc, forward func(ctx context.Context, network, addr string) (net.Conn, error)) *proxyDialer {
	if forward == nil {
		var d net.Dialer
		forward = d.DialContext
	}
	return &proxyDialer{proxy: p, forward: forward}
}

// dialContext connects to addr; scheme ("https" or "http") says whether
// the caller wraps the connection in TLS, which picks the proxy.
func (d *proxyDialer) dialContext(ctx context.Context, scheme, network, addr string) (net.Conn, error) {
	pu, err := d.proxy(&url.URL{Scheme: scheme, Host: addr})
	if err != nil {
		return nil, fmt.Errorf("proxy for %s: %v: %w", addr, err, ErrProxy)
	}
	if pu == nil {
		return d.forward(ctx, network, addr)
	}
	return d.connect(ctx, pu, addr)
}

// connect opens a CONNECT tunnel to addr through the proxy pu.
func (d *proxyDialer) connect(ctx context.Context, pu *url.URL, addr string) (net.Conn, error) {
	conn, err := d.dialProxy(ctx, pu)
	if err != nil {
		return nil, err
	}
	// The proxy's answer is read under ctx: its end unblocks the read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c, err := tunnel(conn, pu, addr)
	if !stop() {
		err = fmt.Errorf("CONNECT %s through %s: %w", addr, ProxyDisplay(pu), ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// dialProxy opens the connection to the proxy itself.
func (d *proxyDialer) dialProxy(ctx context.Context, pu *url.URL) (net.Conn, error) {
	port := pu.Port()
	switch pu.Scheme {
	case "http":
		port = cmp.Or(port, "80")
	case "https":
		port = cmp.Or(port, "443")
	default:
		return nil, fmt.Errorf("proxy %s: scheme %q: want http or https: %w", ProxyDisplay(pu), pu.Scheme, ErrProxy)
	}
	conn, err := d.forward(ctx, "tcp", net.JoinHostPort(pu.Hostname(), port))
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %v: %w", ProxyDisplay(pu), err, ErrProxy)
	}
	if pu.Scheme == "http" {
		return conn, nil
	}
	tc := tls.Client(conn, &tls.Config{ServerName: pu.Hostname(), MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("proxy %s: TLS: %v: %w", ProxyDisplay(pu), err, ErrProxy)
	}
	return tc, nil
}

// tunnel asks the proxy on conn for a tunnel to addr.
func tunnel(conn net.Conn, pu *url.URL, addr string) (net.Conn, error) {
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if u := pu.User; u != nil {
		pass, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("CONNECT %s through %s: %v: %w", addr, ProxyDisplay(pu), err, ErrProxy)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("CONNECT %s through %s: %v: %w", addr, ProxyDisplay(pu), err, ErrProxy)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CONNECT %s through %s: proxy answered %q: %w", addr, ProxyDisplay(pu), resp.Status, ErrProxy)
	}
	_ = conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 { // the target spoke first, in the same read
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// bufferedConn is a connection whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// proxiedWebSocket returns a copy of d that dials wsURL through p's proxy
// (for wss:// TLS then runs inside the tunnel).
func proxiedWebSocket(d *websocket.Dialer, p ProxyFunc, wsURL string) *websocket.Dialer {
	scheme := "http"
	if strings.HasPrefix(wsURL, "wss://") {
		scheme = "https"
	}
	pd := newProxyDialer(p, d.NetDialContext)
	c := *d
	c.Proxy = nil
	c.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return pd.dialContext(ctx, scheme, network, addr)
	}
	return &c
}

// turnDialTimeout bounds one TURN-over-TCP connection (with its CONNECT
// and TLS handshake): pion's proxy dialer takes no context.
const turnDialTimeout = 10 * time.Second

// turnALPN is the ALPN id of TURN over TLS (RFC 7443), by which a server
// sharing one port between HTTPS and TURN tells them apart.
const turnALPN = "stun.turn"

// turnDialer is the ICE proxy dialer. With it set, pion hands it every
// TURN-over-TCP connection, of turn: and turns: URLs alike, and wraps none
// in TLS: it does that for the servers the room lists as turns:.
type turnDialer struct {
	d *proxyDialer
	// tlsName returns the TLS server name for addr when a turns: URL of
	// the room's names it.
	tlsName func(addr string) (string, bool)
}

// Dial implements golang.org/x/net/proxy.Dialer.
func (t turnDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), turnDialTimeout)
	defer cancel()
	name, isTLS := t.tlsName(addr)
	scheme := "http"
	if isTLS {
		scheme = "https"
	}
	conn, err := t.d.dialContext(ctx, scheme, network, addr)
	if err != nil || !isTLS {
		return conn, err
	}
	tc := tls.Client(conn, &tls.Config{ServerName: name, NextProtos: []string{turnALPN}, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TURN over TLS %s: %w", addr, err)
	}
	return tc, nil
}

// turnsName returns the host of the room's turns: URL for addr
// (host:port), the name its certificate must carry.
func (r *room) turnsName(addr string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return turnsHost(r.ice, addr)
}

func turnsHost(ice []protocol.ICEServer, addr string) (string, bool) {
	for _, s := range ice {
		for _, raw := range s.URLs {
			if !strings.HasPrefix(raw, "turns:") {
				continue
			}
			u, err := stun.ParseURI(raw)
			if err == nil && net.JoinHostPort(u.Host, fmt.Sprint(u.Port)) == addr {
				return u.Host, true
			}
		}
	}
	return "", false
}
