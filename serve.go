package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
	"cloakroom/signaling"
	"cloakroom/turn"
	"cloakroom/web"
)

// serveConfig is what the serve flags set.
type serveConfig struct {
	Addr          string
	TurnPort      int
	PublicIP      string
	TLS           string
	TLSCert       string
	TLSKey        string
	RelayTTL      time.Duration
	RelayMax      string
	RelayRoomMax  string
	MaxMembers    int
	AllowedOrigin []string
	LogLevel      string
	TurnSecret    string
	TurnTTL       time.Duration
	TurnPrivate   bool
	TurnLoopback  bool
	TurnTLSPort   int
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlags("serve", stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address HOST:PORT")
	fs.IntVar(&cfg.TurnPort, "turn-port", 3478, "embedded TURN server port, UDP and TCP (0: no TURN server)")
	fs.StringVar(&cfg.PublicIP, "public-ip", "", "IPv4 address announced for TURN relays (default: the --addr host, else detected)")
	fs.IntVar(&cfg.TurnTLSPort, "turn-tls-port", 5349, "TURN over TLS port when --tls-cert is given (443 for networks that pass only TLS; 0: off)")
	fs.StringVar(&cfg.TurnSecret, "turn-secret", "", "TURN REST shared secret, coturn static-auth-secret compatible (default: random at start)")
	fs.DurationVar(&cfg.TurnTTL, "turn-credential-ttl", 6*time.Hour, "lifetime of the TURN credentials given to members (a relayed transfer cannot outlive them)")
	fs.BoolVar(&cfg.TurnPrivate, "turn-allow-private", false, "let TURN relay to private (RFC 1918) addresses: needed when members are on one LAN behind the server")
	fs.BoolVar(&cfg.TurnLoopback, "turn-allow-loopback", false, "let TURN relay to loopback addresses (tests; implied when the relay address itself is loopback)")
	fs.StringVar(&cfg.TLS, "tls", "off", "TLS mode: off, or use --tls-cert/--tls-key")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file (PEM)")
	fs.DurationVar(&cfg.RelayTTL, "relay-ttl", 10*time.Minute, "how long the relay keeps an item nobody acknowledged")
	fs.StringVar(&cfg.RelayMax, "relay-max-bytes", "256MiB", "relay store cap in bytes, all rooms together (e.g. 64MiB)")
	fs.StringVar(&cfg.RelayRoomMax, "relay-room-bytes", "", "relay store cap per room (default: half of --relay-max-bytes)")
	fs.IntVar(&cfg.MaxMembers, "max-members", 100, "members per room")
	fs.StringSliceVar(&cfg.AllowedOrigin, "allow-origin", nil, "extra allowed Origin for browsers (the server's own host is always allowed)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	return serve(ctx, cfg, stdout, stderr)
}

func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	relayMax, roomMax, err := relayCaps(cfg)
	if err != nil {
		return err
	}
	if cfg.TLS != "off" && cfg.TLS != "" {
		return usagef("serve: --tls %q is not supported yet; use --tls off or --tls-cert/--tls-key", cfg.TLS)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return usagef("serve: --tls-cert and --tls-key go together")
	}
	limitMemory(relayMax, log)
	var srv *signaling.Server
	st, err := store.New(store.Config{
		MaxBytes: relayMax, MaxRoomBytes: roomMax, TTL: cfg.RelayTTL,
		OnEvict: func(it store.Item, members []string) { srv.OnEvict(it, members) },
	})
	if err != nil {
		return fmt.Errorf("serve: relay store: %w", err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", cfg.Addr, err)
	}
	ice, closeTURN, err := startTURN(cfg, log, stdout)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeTURN()
	srv, err = signaling.New(signaling.Config{
		Store: st, Static: web.Handler(), Logger: log, AllowedOrigins: cfg.AllowedOrigin,
		MaxMembers: cfg.MaxMembers, RelayTTL: cfg.RelayTTL, ICE: ice,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	defer srv.Close()
	err = runHTTP(ctx, ln, srv, cfg, log, stdout)
	stats := st.Stats()
	log.Info("relay store at exit", "bytes", stats.Bytes, "items", stats.Items)
	return err
}

func runHTTP(ctx context.Context, ln net.Listener, srv *signaling.Server, cfg serveConfig, log *slog.Logger, stdout io.Writer) error {
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "cloakroom: serving on %s://%s\n", scheme, ln.Addr())
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); scheme == "http" && !isLoopback(host) {
		fmt.Fprintln(stdout, "cloakroom: warning: plain HTTP on a non-loopback address: browsers on other machines get no WebCrypto; use --tls-cert/--tls-key")
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go srv.RunCleanup(cctx, 5*time.Second)
	errc := make(chan error, 1)
	go func() {
		if scheme == "https" {
			errc <- hs.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer scancel()
	_ = srv.Close()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func relayCaps(cfg serveConfig) (int64, int64, error) {
	total, err := humanize.ParseBytes(cfg.RelayMax)
	if err != nil || total == 0 {
		return 0, 0, usagef("serve: --relay-max-bytes %q: want a size like 64MiB", cfg.RelayMax)
	}
	room := total / 2
	if cfg.RelayRoomMax != "" {
		if room, err = humanize.ParseBytes(cfg.RelayRoomMax); err != nil || room == 0 {
			return 0, 0, usagef("serve: --relay-room-bytes %q: want a size like 32MiB", cfg.RelayRoomMax)
		}
	}
	return int64(total), int64(min(room, total)), nil
}

// limitMemory sets a soft memory limit a little above the relay cap (unless
// GOMEMLIMIT is set), so the garbage collector keeps the heap near what the
// relay actually holds instead of doubling it.
func limitMemory(relayMax int64, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := relayMax + relayMax/4 + 48<<20
	debug.SetMemoryLimit(limit)
	log.Debug("soft memory limit", "bytes", limit)
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// startTURN starts the embedded TURN server (unless --turn-port 0) and
// returns the function the signaling server uses to hand each joined
// member its ICE servers and credentials.
func startTURN(cfg serveConfig, log *slog.Logger, stdout io.Writer) (func(string) ([]protocol.ICEServer, time.Time), func(), error) {
	if cfg.TurnPort == 0 {
		fmt.Fprintln(stdout, "cloakroom: TURN server off (--turn-port 0): members behind strict NATs fall back to the relay")
		return nil, func() {}, nil
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, nil, usagef("serve: --addr %q: %v", cfg.Addr, err)
	}
	secret := []byte(cfg.TurnSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, nil, fmt.Errorf("serve: TURN secret: %w", err)
		}
	}
	var public net.IP
	if cfg.PublicIP != "" {
		if public = net.ParseIP(cfg.PublicIP); public == nil || public.To4() == nil {
			return nil, nil, usagef("serve: --public-ip %q: want an IPv4 address", cfg.PublicIP)
		}
	}
	loopback := cfg.TurnLoopback || (public == nil && isLoopback(host)) || (public != nil && public.IsLoopback())
	tcfg := turn.Config{
		Addr: net.JoinHostPort(host, strconv.Itoa(cfg.TurnPort)), PublicIP: public, Secret: secret,
		AllowPrivate: cfg.TurnPrivate, AllowLoopback: loopback, Logger: log,
	}
	if cfg.TLSCert != "" && cfg.TurnTLSPort != 0 {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: TURN over TLS: %w", err)
		}
		tcfg.TLSAddr = net.JoinHostPort(host, strconv.Itoa(cfg.TurnTLSPort))
		tcfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ts, err := turn.New(tcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: TURN server: %w", err)
	}
	urls := ts.URLs("")
	fmt.Fprintf(stdout, "cloakroom: TURN server on %s\n", strings.Join(urls, " "))
	ice := func(member string) ([]protocol.ICEServer, time.Time) {
		user, pass := ts.Credentials(member, cfg.TurnTTL)
		return []protocol.ICEServer{{URLs: urls, Username: user, Credential: pass}}, time.Now().Add(cfg.TurnTTL)
	}
	return ice, func() { _ = ts.Close() }, nil
}
