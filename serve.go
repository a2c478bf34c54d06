package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/mdp/qrterminal/v3"
	flag "github.com/spf13/pflag"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
	"cloakroom/signaling"
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
	TLSDir        string
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
	TurnExternal  []string
	MetricsAddr   string
	metricsSet    bool // --metrics-addr given explicitly
	Limits        limitFlags
}

// limitFlags are the abuse limits (README "Limits").
type limitFlags struct {
	MaxRooms, MaxConns, MaxConnsPerIP int
	JoinRate, MsgRate                 float64
	JoinBurst, MsgBurst               int
	UploadRate                        string
	HeaderTimeout, IdleTimeout        time.Duration
	MaxHeaderBytes                    int
	HandshakeTimeout, JoinTimeout     time.Duration
	PingInterval, PingTimeout         time.Duration
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlags("serve", stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address HOST:PORT")
	fs.StringVar(&cfg.TLS, "tls", "off", "TLS mode: off (or --tls-cert/--tls-key), or auto: a self-signed certificate made at start")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file (PEM)")
	fs.StringVar(&cfg.TLSDir, "tls-dir", "", "with --tls auto: keep the certificate in this directory and reuse it (phones accept it once)")
	fs.IntVar(&cfg.TurnPort, "turn-port", 3478, "embedded TURN server port, UDP and TCP (0: no TURN server)")
	fs.StringVar(&cfg.PublicIP, "public-ip", "", "IPv4 address announced for TURN relays (default: the --addr host, else detected)")
	fs.IntVar(&cfg.TurnTLSPort, "turn-tls-port", 5349, "TURN over TLS port when TLS is on (443 for networks that pass only TLS; 0: off)")
	fs.StringVar(&cfg.TurnSecret, "turn-secret", "", "TURN REST shared secret, coturn static-auth-secret compatible (default: random at start)")
	fs.StringSliceVar(&cfg.TurnExternal, "turn-external", nil, "external TURN server URL(s) given to clients instead of the embedded server (e.g. turn:turn.example.com:3478?transport=udp); needs --turn-secret")
	fs.DurationVar(&cfg.TurnTTL, "turn-credential-ttl", 6*time.Hour, "lifetime of the TURN credentials given to members (a relayed transfer cannot outlive them)")
	fs.BoolVar(&cfg.TurnPrivate, "turn-allow-private", false, "let TURN relay to private (RFC 1918) addresses: needed when members are on one LAN behind the server")
	fs.BoolVar(&cfg.TurnLoopback, "turn-allow-loopback", false, "let TURN relay to loopback addresses (tests; implied when the relay address itself is loopback)")
	fs.DurationVar(&cfg.RelayTTL, "relay-ttl", 10*time.Minute, "how long the relay keeps an item nobody acknowledged")
	fs.StringVar(&cfg.RelayMax, "relay-max-bytes", "256MiB", "relay store cap in bytes, all rooms together (e.g. 64MiB)")
	fs.StringVar(&cfg.RelayRoomMax, "relay-room-bytes", "", "relay store cap per room (default: half of --relay-max-bytes)")
	fs.IntVar(&cfg.MaxMembers, "max-members", 100, "members per room")
	fs.StringSliceVar(&cfg.AllowedOrigin, "allow-origin", nil, "extra allowed Origin for browsers (the server's own host is always allowed)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", defaultMetricsAddr, "listen address of the Prometheus /metrics endpoint (empty or 0: off)")
	addLimitFlags(fs, &cfg.Limits)
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	cfg.metricsSet = fs.Changed("metrics-addr")
	return serve(ctx, cfg, stdout, stderr)
}

const defaultMetricsAddr = "127.0.0.1:9180"

func addLimitFlags(fs *flag.FlagSet, l *limitFlags) {
	fs.IntVar(&l.MaxRooms, "max-rooms", 10000, "rooms on the server")
	fs.IntVar(&l.MaxConns, "max-conns", 10000, "WebSocket connections at once, all clients together")
	fs.IntVar(&l.MaxConnsPerIP, "max-conns-per-ip", 100, "WebSocket connections at once from one IPv4 address or IPv6 /64 (-1: no limit)")
	fs.Float64Var(&l.JoinRate, "join-rate", 5, "new WebSocket connections per second from one address (-1: no limit)")
	fs.IntVar(&l.JoinBurst, "join-burst", 50, "burst allowed over --join-rate")
	fs.Float64Var(&l.MsgRate, "msg-rate", 200, "control messages (chat, signals, file offers; not acks) per second from one address; past a 2 s wait they are refused (-1: no limit)")
	fs.IntVar(&l.MsgBurst, "msg-burst", 2000, "burst allowed over --msg-rate")
	fs.StringVar(&l.UploadRate, "relay-upload-rate", "128MiB", "relay upload bytes per second from one address: faster uploads are slowed, not refused (0: no limit)")
	fs.DurationVar(&l.HeaderTimeout, "http-header-timeout", 10*time.Second, "time a client has to send its HTTP request headers (and TLS handshake)")
	fs.DurationVar(&l.IdleTimeout, "http-idle-timeout", 120*time.Second, "idle keep-alive HTTP connections are closed after this")
	fs.IntVar(&l.MaxHeaderBytes, "http-max-header-bytes", 16<<10, "largest HTTP request header")
	fs.DurationVar(&l.HandshakeTimeout, "ws-handshake-timeout", 10*time.Second, "WebSocket upgrade must complete within this")
	fs.DurationVar(&l.JoinTimeout, "join-timeout", 10*time.Second, "a new WebSocket must send join within this")
	fs.DurationVar(&l.PingInterval, "ping-interval", protocol.PingInterval, "the server pings each client this often")
	fs.DurationVar(&l.PingTimeout, "ping-timeout", protocol.PongWait, "a client from which nothing (not even a pong) arrives for this long is dropped")
}

// signalingLimits turns the limit flags into signaling.Config fields.
func signalingLimits(l limitFlags, c *signaling.Config) error {
	if l.MaxRooms <= 0 || l.MaxConns <= 0 || l.MaxConnsPerIP == 0 || l.JoinRate == 0 || l.MsgRate == 0 {
		return usagef("serve: --max-rooms, --max-conns, --max-conns-per-ip, --join-rate and --msg-rate must not be 0")
	}
	if l.JoinBurst <= 0 || l.MsgBurst <= 0 || l.MaxHeaderBytes <= 0 {
		return usagef("serve: --join-burst, --msg-burst and --http-max-header-bytes must be positive")
	}
	for _, d := range []time.Duration{l.HeaderTimeout, l.IdleTimeout, l.HandshakeTimeout, l.JoinTimeout, l.PingInterval, l.PingTimeout} {
		if d <= 0 {
			return usagef("serve: timeouts must be positive")
		}
	}
	if l.PingTimeout <= l.PingInterval {
		return usagef("serve: --ping-timeout must be longer than --ping-interval")
	}
	up, err := humanize.ParseBytes(l.UploadRate)
	if err != nil {
		return usagef("serve: --relay-upload-rate %q: want bytes per second like 64MiB (0: no limit)", l.UploadRate)
	}
	c.MaxRooms, c.MaxConns, c.MaxConnsPerAddr = l.MaxRooms, l.MaxConns, l.MaxConnsPerIP
	c.JoinRate, c.JoinBurst, c.MsgRate, c.MsgBurst = l.JoinRate, l.JoinBurst, l.MsgRate, l.MsgBurst
	c.UploadRate = int64(up)
	c.UploadBurst = max(4<<20, int64(up)/8)
	c.ReadHeaderTimeout, c.IdleTimeout, c.MaxHeaderBytes = l.HeaderTimeout, l.IdleTimeout, l.MaxHeaderBytes
	c.HandshakeTimeout, c.JoinTimeout = l.HandshakeTimeout, l.JoinTimeout
	c.PingInterval, c.PongWait = l.PingInterval, l.PingTimeout
	return nil
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
	if err := checkTLSFlags(cfg); err != nil {
		return err
	}
	sigCfg := signaling.Config{Static: web.Handler(), Logger: log, AllowedOrigins: cfg.AllowedOrigin,
		MaxMembers: cfg.MaxMembers, RelayTTL: cfg.RelayTTL}
	if err := signalingLimits(cfg.Limits, &sigCfg); err != nil {
		return err
	}
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
	defer ln.Close()
	cert, err := loadTLS(cfg, ln.Addr())
	if err != nil {
		return err
	}
	tb, err := startTURN(cfg, cert, log, stdout)
	if err != nil {
		return err
	}
	defer tb.close()
	sigCfg.Store, sigCfg.ICE = st, tb.ice
	if srv, err = signaling.New(sigCfg); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer srv.Close()
	mln, err := listenMetrics(cfg.MetricsAddr, cfg.metricsSet, log)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		governMemory(cctx, relayMax, st, log)
	}()
	if mln != nil {
		fmt.Fprintf(stdout, "cloakroom: metrics on http://%s/metrics\n", mln.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			runMetrics(cctx, mln, metricsSource{sig: srv, store: st, relayMax: relayMax, turn: tb.stats}, log)
		}()
	}
	var tlsCfg *tls.Config
	if cert != nil {
		tlsCfg = serverTLS(*cert)
	}
	announce(stdout, cfg, ln.Addr(), cert)
	err = srv.Run(cctx, ln, tlsCfg)
	stats := st.Stats()
	log.Info("relay store at exit", "bytes", stats.Bytes, "items", stats.Items)
	return err
}

// checkTLSFlags checks that the TLS flags agree.
func checkTLSFlags(cfg serveConfig) error {
	switch {
	case cfg.TLS != "off" && cfg.TLS != "auto" && cfg.TLS != "":
		return usagef("serve: --tls %q: want off or auto", cfg.TLS)
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return usagef("serve: --tls-cert and --tls-key go together")
	case cfg.TLS == "auto" && cfg.TLSCert != "":
		return usagef("serve: --tls auto makes its own certificate; drop --tls-cert/--tls-key")
	case cfg.TLSDir != "" && cfg.TLS != "auto":
		return usagef("serve: --tls-dir goes with --tls auto")
	}
	return nil
}

// loadTLS returns the certificate to serve (nil: plain HTTP).
func loadTLS(cfg serveConfig, addr net.Addr) (*tls.Certificate, error) {
	switch {
	case cfg.TLSCert != "":
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("serve: TLS certificate: %w", err)
		}
		return &c, nil
	case cfg.TLS == "auto":
		host, _, _ := net.SplitHostPort(addr.String())
		if h, _, err := net.SplitHostPort(cfg.Addr); err == nil && net.ParseIP(h) == nil && h != "" {
			host = h // a host name: the certificate names it
		}
		c, _, err := autoCert(cfg.TLSDir, namesFor(host), time.Now())
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		return &c, nil
	}
	return nil, nil
}

// announce prints where the server is, and for --tls auto the
// certificate's fingerprint and a QR code of the page's URL.
func announce(stdout io.Writer, cfg serveConfig, addr net.Addr, cert *tls.Certificate) {
	scheme := "http"
	if cert != nil {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "cloakroom: serving on %s://%s\n", scheme, addr)
	host, port, _ := net.SplitHostPort(addr.String())
	if cert == nil && !isLoopback(host) {
		fmt.Fprintf(stdout, "cloakroom: WARNING: plain HTTP on %s, not a loopback address: phones and other machines on the LAN will not be able to use the page (browsers give WebCrypto only to HTTPS pages or localhost). Use --tls auto, or --tls-cert/--tls-key.\n", host)
	}
	if cfg.TLS != "auto" {
		return
	}
	url := scheme + "://" + net.JoinHostPort(pageHost(host), port) + "/"
	fmt.Fprintf(stdout, "cloakroom: self-signed certificate, SHA-256 fingerprint %s\n", fingerprint(*cert))
	fmt.Fprintln(stdout, "cloakroom: browsers will warn about it once; check the fingerprint in the browser's certificate viewer before accepting")
	fmt.Fprintf(stdout, "cloakroom: open %s (or scan this QR code):\n", url)
	qrterminal.GenerateHalfBlock(url, qrterminal.L, stdout)
}

// pageHost is the address to give other machines for a server bound to
// host: for an unspecified address, the first LAN IPv4 address.
func pageHost(host string) string {
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsUnspecified() {
		return host
	}
	for _, a := range interfaceIPs() {
		if a.To4() != nil && !a.IsLoopback() {
			return a.String()
		}
	}
	return "127.0.0.1"
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

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
