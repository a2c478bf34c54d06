package main

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	flag "github.com/spf13/pflag"

	"cloakroom/internal/auth"
	"cloakroom/internal/protocol"
	"cloakroom/turn"
)

// turnBinding is what serve gets from the TURN side: the ICE servers for a
// joined member (nil: none), the embedded server's counters, and a close.
type turnBinding struct {
	ice    func(user, host string) ([]protocol.ICEServer, time.Time)
	revoke func(user string) // nil: no TURN
	stats  func() (turn.Stats, bool)
	close  func()
}

func noTURNStats() (turn.Stats, bool) { return turn.Stats{}, false }

func addTURNFlags(fs *flag.FlagSet, cfg *serveConfig) {
	fs.IntVar(&cfg.TurnPort, "turn-port", turn.DefaultPort, "embedded TURN server port, UDP and TCP (0: no TURN server)")
	fs.IPVar(&cfg.PublicIP, "public-ip", nil, "IPv4 address announced for TURN relays (default: the --addr host, else detected)")
	fs.IntVar(&cfg.TurnTLSPort, "turn-tls-port", 0, "TURN over TLS on a port of its own too, when TLS is on (e.g. 5349; 0: none, TURN over TLS is on the --addr port)")
	fs.BoolVar(&cfg.TurnTLSMux, "turn-tls-mux", true, "when TLS is on, serve TURN over TLS on the --addr port beside HTTPS and WSS, told apart by ALPN (stun.turn) or the first bytes (false: HTTPS only there)")
	fs.StringVar(&cfg.TurnSecret, "turn-secret", "", "TURN REST shared secret, coturn static-auth-secret compatible (default: random at start)")
	fs.StringSliceVar(&cfg.TurnExternal, "turn-external", nil, "external TURN server URL(s) given to clients instead of the embedded server (e.g. turn:turn.example.com:3478?transport=udp); needs --turn-secret")
	fs.DurationVar(&cfg.TurnTTL, "turn-credential-ttl", 6*time.Hour, "lifetime of the TURN credentials given to members (a relayed transfer cannot outlive them)")
	fs.BoolVar(&cfg.TurnPrivate, "turn-allow-private", false, "let TURN relay to private (RFC 1918) addresses: needed when members are on one LAN behind the server")
	fs.BoolVar(&cfg.TurnLoopback, "turn-allow-loopback", false, "let TURN relay to loopback addresses (tests; implied when the relay address itself is loopback)")
}

// checkTURNFlags checks the TURN flags without starting anything: the
// external servers' flags, or the embedded server's configuration by
// package turn's own rules (turn.Config.Validate).
func checkTURNFlags(cfg serveConfig) error {
	switch {
	case len(cfg.TurnExternal) > 0:
		return checkExternalTURN(cfg)
	case cfg.TurnPort == 0:
		return nil
	}
	tcfg, err := turnConfig(cfg, []byte("checked"), nil)
	if err != nil {
		return err
	}
	if err := tcfg.Validate(); err != nil {
		if errors.Is(err, turn.ErrPublicIP) {
			return usagef("serve: --public-ip %s: %w", cfg.PublicIP, err)
		}
		return usagef("serve: TURN: %w", err)
	}
	return nil
}

// turnConfig is the embedded TURN server's configuration (cert: TURN over
// TLS with the HTTPS certificate, when --turn-tls-port is on).
func turnConfig(cfg serveConfig, secret []byte, cert *tls.Certificate) (turn.Config, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return turn.Config{}, usagef("serve: --addr %q: %v", cfg.Addr, err)
	}
	public := cfg.PublicIP
	loopback := cfg.TurnLoopback || (public == nil && isLoopback(host)) || (public != nil && public.IsLoopback())
	tcfg := turn.Config{
		Addr: net.JoinHostPort(host, strconv.Itoa(cfg.TurnPort)), PublicIP: public, Secret: secret,
		AllowPrivate: cfg.TurnPrivate, AllowLoopback: loopback,
	}
	if cert != nil && cfg.TurnTLSPort != 0 {
		// The HTTPS certificate; no ALPN: TURN clients offer their own.
		tcfg.TLSAddr = net.JoinHostPort(host, strconv.Itoa(cfg.TurnTLSPort))
		tcfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}
	return tcfg, nil
}

// startTURN starts the embedded TURN server, or points members at
// --turn-external servers, or neither (--turn-port 0). The flags were
// checked by checkTURNFlags. shared, when set, is the HTTPS port's share of
// TURN over TLS (a Mux's TURN listener; the server closes it).
func startTURN(cfg serveConfig, cert *tls.Certificate, shared *mainPortTURN, log *slog.Logger, stdout io.Writer) (turnBinding, error) {
	none := turnBinding{stats: noTURNStats, close: func() {}}
	if len(cfg.TurnExternal) > 0 {
		return externalTURN(cfg, stdout), nil
	}
	if cfg.TurnPort == 0 {
		fmt.Fprintln(stdout, "cloakroom: TURN server off (--turn-port 0): members behind strict NATs fall back to the relay")
		return none, nil
	}
	secret, err := turnSecret(cfg.TurnSecret)
	if err != nil {
		return none, err
	}
	tcfg, err := turnConfig(cfg, secret, cert)
	if err != nil {
		return none, err
	}
	tcfg.Logger = log
	if shared != nil {
		tcfg.TLSListener = shared.ln
	}
	ts, err := turn.New(tcfg)
	if err != nil {
		return none, fmt.Errorf("serve: TURN server: %w", err)
	}
	urls := ts.URLs("")
	shown := urls
	if shared != nil {
		shown = append(slices.Clip(urls), shared.url("")+" (the HTTPS port)")
	}
	fmt.Fprintf(stdout, "cloakroom: TURN server on %s\n", strings.Join(shown, " "))
	return turnBinding{
		ice: func(user, host string) ([]protocol.ICEServer, time.Time) {
			name, pass := ts.Credentials(user, cfg.TurnTTL)
			all := urls
			if shared != nil {
				all = append(slices.Clip(urls), shared.url(host))
			}
			return []protocol.ICEServer{{URLs: all, Username: name, Credential: pass}}, time.Now().Add(cfg.TurnTTL)
		},
		revoke: func(user string) { ts.Revoke(user, time.Now().Add(cfg.TurnTTL)) },
		stats:  func() (turn.Stats, bool) { return ts.Stats(), true },
		close:  func() { _ = ts.Close() },
	}, nil
}

// checkExternalTURN checks the --turn-external flags.
func checkExternalTURN(cfg serveConfig) error {
	if cfg.TurnSecret == "" {
		return usagef("serve: --turn-external needs --turn-secret (the external server's static-auth-secret)")
	}
	if len(cfg.TurnExternal) > protocol.MaxICEURLs {
		return usagef("serve: at most %d --turn-external URLs", protocol.MaxICEURLs)
	}
	for _, u := range cfg.TurnExternal {
		if err := checkTURNURL(u); err != nil {
			return usagef("serve: --turn-external %q: %v", u, err)
		}
	}
	return nil
}

// externalTURN hands members credentials for --turn-external servers,
// minted from --turn-secret with the TURN REST scheme (coturn's
// static-auth-secret): the embedded server does not start. The flags were
// checked by checkExternalTURN.
func externalTURN(cfg serveConfig, stdout io.Writer) turnBinding {
	urls, secret := cfg.TurnExternal, []byte(cfg.TurnSecret)
	fmt.Fprintf(stdout, "cloakroom: external TURN server %s (embedded TURN server off)\n", strings.Join(urls, " "))
	return turnBinding{
		ice: func(user, _ string) ([]protocol.ICEServer, time.Time) {
			now := time.Now()
			name, pass := auth.MintTURN(secret, user, cfg.TurnTTL, now)
			return []protocol.ICEServer{{URLs: urls, Username: name, Credential: pass}}, now.Add(cfg.TurnTTL)
		},
		revoke: func(string) {}, // an external server cannot be told: its credentials run to their expiry
		stats:  noTURNStats,
		close:  func() {},
	}
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
