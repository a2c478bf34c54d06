package main

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"cloakroom/internal/auth"
	"cloakroom/internal/protocol"
	"cloakroom/turn"
)

// turnBinding is what serve gets from the TURN side: the ICE servers for a
// joined member (nil: none), the embedded server's counters, and a close.
type turnBinding struct {
	ice   func(member string) ([]protocol.ICEServer, time.Time)
	stats func() (turn.Stats, bool)
	close func()
}

func noTURNStats() (turn.Stats, bool) { return turn.Stats{}, false }

// startTURN starts the embedded TURN server, or points members at
// --turn-external servers, or neither (--turn-port 0).
func startTURN(cfg serveConfig, cert *tls.Certificate, log *slog.Logger, stdout io.Writer) (turnBinding, error) {
	none := turnBinding{stats: noTURNStats, close: func() {}}
	if len(cfg.TurnExternal) > 0 {
		return externalTURN(cfg, stdout)
	}
	if cfg.TurnPort == 0 {
		fmt.Fprintln(stdout, "cloakroom: TURN server off (--turn-port 0): members behind strict NATs fall back to the relay")
		return none, nil
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return none, usagef("serve: --addr %q: %v", cfg.Addr, err)
	}
	secret, err := turnSecret(cfg.TurnSecret)
	if err != nil {
		return none, err
	}
	var public net.IP
	if cfg.PublicIP != "" {
		if public = net.ParseIP(cfg.PublicIP); public == nil || public.To4() == nil {
			return none, usagef("serve: --public-ip %q: want an IPv4 address", cfg.PublicIP)
		}
	}
	loopback := cfg.TurnLoopback || (public == nil && isLoopback(host)) || (public != nil && public.IsLoopback())
	tcfg := turn.Config{
		Addr: net.JoinHostPort(host, strconv.Itoa(cfg.TurnPort)), PublicIP: public, Secret: secret,
		AllowPrivate: cfg.TurnPrivate, AllowLoopback: loopback, Logger: log,
	}
	if cert != nil && cfg.TurnTLSPort != 0 {
		// The HTTPS certificate; no ALPN: TURN clients offer their own.
		tcfg.TLSAddr = net.JoinHostPort(host, strconv.Itoa(cfg.TurnTLSPort))
		tcfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}
	ts, err := turn.New(tcfg)
	if err != nil {
		return none, fmt.Errorf("serve: TURN server: %w", err)
	}
	urls := ts.URLs("")
	fmt.Fprintf(stdout, "cloakroom: TURN server on %s\n", strings.Join(urls, " "))
	return turnBinding{
		ice: func(member string) ([]protocol.ICEServer, time.Time) {
			user, pass := ts.Credentials(member, cfg.TurnTTL)
			return []protocol.ICEServer{{URLs: urls, Username: user, Credential: pass}}, time.Now().Add(cfg.TurnTTL)
		},
		stats: func() (turn.Stats, bool) { return ts.Stats(), true },
		close: func() { _ = ts.Close() },
	}, nil
}

// externalTURN hands members credentials for --turn-external servers,
// minted from --turn-secret with the TURN REST scheme (coturn's
// static-auth-secret): the embedded server does not start.
func externalTURN(cfg serveConfig, stdout io.Writer) (turnBinding, error) {
	none := turnBinding{stats: noTURNStats, close: func() {}}
	if cfg.TurnSecret == "" {
		return none, usagef("serve: --turn-external needs --turn-secret (the external server's static-auth-secret)")
	}
	if len(cfg.TurnExternal) > protocol.MaxICEURLs {
		return none, usagef("serve: at most %d --turn-external URLs", protocol.MaxICEURLs)
	}
	for _, u := range cfg.TurnExternal {
		if err := checkTURNURL(u); err != nil {
			return none, usagef("serve: --turn-external %q: %v", u, err)
		}
	}
	urls, secret := cfg.TurnExternal, []byte(cfg.TurnSecret)
	fmt.Fprintf(stdout, "cloakroom: external TURN server %s (embedded TURN server off)\n", strings.Join(urls, " "))
	return turnBinding{
		ice: func(member string) ([]protocol.ICEServer, time.Time) {
			now := time.Now()
			user, pass := auth.MintTURN(secret, member, cfg.TurnTTL, now)
			return []protocol.ICEServer{{URLs: urls, Username: user, Credential: pass}}, now.Add(cfg.TurnTTL)
		},
		stats: noTURNStats,
		close: func() {},
	}, nil
}

// checkTURNURL accepts turn: and turns: URIs (RFC 7065) with a host.
func checkTURNURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "turn" && u.Scheme != "turns":
		return fmt.Errorf("want a turn: or turns: URL")
	case u.Opaque == "" || strings.ContainsAny(u.Opaque, "/@ "):
		return fmt.Errorf("want turn:HOST[:PORT][?transport=udp|tcp]")
	}
	if t := u.Query().Get("transport"); t != "" && t != "udp" && t != "tcp" {
		return fmt.Errorf("transport %q: want udp or tcp", t)
	}
	return nil
}

// turnSecret is --turn-secret, or 32 random bytes.
func turnSecret(flag string) ([]byte, error) {
	if flag != "" {
		return []byte(flag), nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("serve: TURN secret: %w", err)
	}
	return secret, nil
}
