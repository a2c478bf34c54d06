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

	"github.com/mdp/qrterminal/v3"
	flag "github.com/spf13/pflag"

	"cloakroom/signaling"
	"cloakroom/web"
)

// serveConfig is what the serve flags set. The flags that configure the
// signaling server (relay, limits, timeouts) write straight into Sig, and
// their defaults are signaling's (signaling.Defaults, which takes the
// relay's from package store).
type serveConfig struct {
	Addr         string
	TurnPort     int
	PublicIP     net.IP
	TLS          string
	TLSCert      string
	TLSKey       string
	TLSDir       string
	LogLevel     string
	TurnSecret   string
	TurnTTL      time.Duration
	TurnPrivate  bool
	TurnLoopback bool
	TurnTLSPort  int
	TurnTLSMux   bool
	TurnExternal []string
	MetricsAddr  string
	metricsSet   bool   // --metrics-addr given explicitly
	Cluster      string // --cluster: NATS URLs, comma-separated
	ClusterName  string
	Sig          signaling.Config
}

// defaultUploadRate is serve's --relay-upload-rate (the signaling package
// itself sets no upload limit): 1 Gbit/s, more than most internet links
// carry, so it paces only a client with a faster path to the server.
// Loopback, private and link-local addresses have --relay-upload-rate-lan,
// no limit by default (docs/DECISIONS.md "Relay upload rate on the LAN").
const defaultUploadRate = 128 << 20

// noLimit is the signaling Config's "no limit" for a rate.
const noLimit = -1

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, stderr)
}

func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	var cfg serveConfig
	fs := newFlags("serve", stderr)
	addServeFlags(fs, &cfg)
	addTURNFlags(fs, &cfg)
	addRelayFlags(fs, &cfg.Sig)
	addLimitFlags(fs, &cfg.Sig)
	addClusterFlags(fs, &cfg)
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	cfg.metricsSet = fs.Changed("metrics-addr")
	if cfg.Sig.UploadRateLAN == 0 {
		cfg.Sig.UploadRateLAN = noLimit // 0 on the command line: no limit
	}
	return cfg, nil
}

const defaultMetricsAddr = "127.0.0.1:9180"

func addServeFlags(fs *flag.FlagSet, cfg *serveConfig) {
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address HOST:PORT")
	fs.StringVar(&cfg.TLS, "tls", "off", "TLS mode: off (or --tls-cert/--tls-key), or auto: a self-signed certificate made at start")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file (PEM)")
	fs.StringVar(&cfg.TLSDir, "tls-dir", "", "with --tls auto: keep the certificate in this directory and reuse it (phones accept it once)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", defaultMetricsAddr, "listen address of the Prometheus /metrics endpoint (empty or 0: off)")
}

func addRelayFlags(fs *flag.FlagSet, c *signaling.Config) {
	d := signaling.Defaults()
	fs.DurationVar(&c.Relay.TTL, "relay-ttl", d.Relay.TTL, "how long the relay keeps an item nobody acknowledged")
	fs.Var(newPositiveSize(&c.Relay.MaxBytes, d.Relay.MaxBytes), "relay-max-bytes", "relay store cap in bytes, all rooms together (e.g. 64MiB)")
	fs.Var(newPositiveSize(&c.Relay.MaxRoomBytes, 0), "relay-room-bytes", "relay store cap per room (default: half of --relay-max-bytes)")
	fs.Var(newPositiveSize(&c.Relay.MaxOriginBytes, 0), "relay-ip-bytes", "relay bytes the uploads from one IPv4 address or IPv6 /64 may hold, all rooms together (default: a quarter of --relay-max-bytes; behind a reverse proxy set it to --relay-max-bytes)")
	fs.IntVar(&c.MaxMembers, "max-members", d.MaxMembers, "members per room")
	fs.StringSliceVar(&c.AllowedOrigins, "allow-origin", nil, "extra allowed Origin for browsers (the server's own host is always allowed)")
}

func addLimitFlags(fs *flag.FlagSet, c *signaling.Config) {
	d := signaling.Defaults()
	fs.IntVar(&c.MaxRooms, "max-rooms", d.MaxRooms, "rooms on the server")
	fs.IntVar(&c.MaxConns, "max-conns", d.MaxConns, "WebSocket connections at once, all clients together")
	fs.IntVar(&c.MaxConnsPerAddr, "max-conns-per-ip", d.MaxConnsPerAddr, "WebSocket connections at once from one IPv4 address or IPv6 /64 (-1: no limit)")
	fs.IntVar(&c.MaxRoomsPerAddr, "max-rooms-per-ip", d.MaxRoomsPerAddr, "rooms made from one address that are still on the server (-1: no limit)")
	fs.Float64Var(&c.JoinRate, "join-rate", d.JoinRate, "new WebSocket connections per second from one address (-1: no limit)")
	fs.IntVar(&c.JoinBurst, "join-burst", d.JoinBurst, "burst allowed over --join-rate")
	fs.Float64Var(&c.MsgRate, "msg-rate", d.MsgRate, "control messages (chat, signals, file offers; not acks) per second from one address; past a 2 s wait they are refused (-1: no limit)")
	fs.IntVar(&c.MsgBurst, "msg-burst", d.MsgBurst, "burst allowed over --msg-rate")
	fs.Var(newByteSize(&c.UploadRate, defaultUploadRate), "relay-upload-rate", "relay upload bytes per second from one public address: faster uploads are slowed, not refused (0: no limit)")
	fs.Var(newByteSize(&c.UploadRateLAN, 0), "relay-upload-rate-lan", "relay upload bytes per second from one loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7) or link-local address (0: no limit; the per-address relay quota still bounds what it holds). Behind a reverse proxy on this host every client has the proxy's address: set it like --relay-upload-rate")
	fs.DurationVar(&c.ReadHeaderTimeout, "http-header-timeout", d.ReadHeaderTimeout, "time a client has to send its HTTP request headers (and TLS handshake)")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", d.IdleTimeout, "idle keep-alive HTTP connections are closed after this")
	fs.IntVar(&c.MaxHeaderBytes, "http-max-header-bytes", d.MaxHeaderBytes, "largest HTTP request header")
	fs.DurationVar(&c.HandshakeTimeout, "ws-handshake-timeout", d.HandshakeTimeout, "WebSocket upgrade must complete within this")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", d.JoinTimeout, "a new WebSocket must send join within this")
	fs.DurationVar(&c.PingInterval, "ping-interval", d.PingInterval, "the server pings each client this often")
	fs.DurationVar(&c.PongWait, "ping-timeout", d.PongWait, "a client from which nothing (not even a pong) arrives for this long is dropped")
}

// validate checks every flag before serve opens anything: the CLI's own
// rules (0 is not "default" on the command line), then signaling's and
// TURN's configuration checks, so a bad flag never leaves a port bound.
func (cfg serveConfig) validate() error {
	if _, err := newLogger(cfg.LogLevel, io.Discard); err != nil {
		return err
	}
	if err := checkLimitFlags(cfg.Sig); err != nil {
		return err
	}
	if err := cfg.Sig.Validate(); err != nil {
		return usagef("serve: %w", err)
	}
	if err := checkTLSFlags(cfg); err != nil {
		return err
	}
	if err := checkClusterFlags(cfg); err != nil {
		return err
	}
	return checkTURNFlags(cfg)
}

// checkLimitFlags refuses the values the library reads as "default" where
// the command line means them literally (the byte sizes are checked when
// parsed, see byteSize).
func checkLimitFlags(c signaling.Config) error {
	switch {
	case c.MaxRooms <= 0 || c.MaxConns <= 0 || c.MaxConnsPerAddr == 0 || c.MaxRoomsPerAddr == 0 || c.JoinRate == 0 || c.MsgRate == 0:
		return usagef("serve: --max-rooms, --max-conns, --max-conns-per-ip, --max-rooms-per-ip, --join-rate and --msg-rate must not be 0")
	case c.JoinBurst <= 0 || c.MsgBurst <= 0 || c.MaxHeaderBytes <= 0:
		return usagef("serve: --join-burst, --msg-burst and --http-max-header-bytes must be positive")
	}
	for _, d := range []time.Duration{c.ReadHeaderTimeout, c.IdleTimeout, c.HandshakeTimeout, c.JoinTimeout, c.PingInterval, c.PongWait} {
		if d <= 0 {
			return usagef("serve: timeouts must be positive")
		}
	}
	return nil
}

func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	log, _ := newLogger(cfg.LogLevel, stderr) // checked by validate
	ln, cert, tlsCfg, err := listenMain(cfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	mux, shared, err := newMainMux(cfg, ln, tlsCfg, log)
	if err != nil {
		return err
	}
	tb, err := startTURN(cfg, cert, shared, log, stdout)
	if err != nil {
		return err
	}
	defer tb.close()
	sigCfg := cfg.Sig
	sigCfg.Static, sigCfg.Logger, sigCfg.ICE, sigCfg.OnForget = web.Handler(), log, tb.ice, tb.revoke
	node, err := connectCluster(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer node.close()
	sigCfg.Bus = node.bus()
	srv, err := signaling.New(sigCfg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer srv.Close()
	mln, err := listenMetrics(cfg.MetricsAddr, cfg.metricsSet, log)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the helpers stop even when Run fails
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	startHelpers(cctx, &wg, srv, mln, metricsSource{sig: srv, turn: tb.stats, mux: muxStats(mux)}, log, stdout)
	runCluster(cctx, &wg, node, srv, log)
	httpLn, httpTLS := ln, tlsCfg
	if mux != nil { // HTTPS and TURN over TLS on ln: the Mux does TLS
		httpLn, httpTLS = mux.HTTP(), nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := mux.Serve(cctx); err != nil {
				log.Error("serve: HTTPS port", "err", err)
			}
		}()
	}
	announce(stdout, cfg, ln.Addr(), cert)
	err = srv.Run(cctx, httpLn, httpTLS)
	stats := srv.Stats().Relay
	log.Info("relay store at exit", "bytes", stats.Bytes, "items", stats.Items)
	return err
}

// listenMain opens the main listener (--addr) and the TLS it serves: the
// --tls-cert/--tls-key files, a certificate of --tls auto for the
// listener's address, or none (cert and tlsCfg nil).
func listenMain(cfg serveConfig) (net.Listener, *tls.Certificate, *tls.Config, error) {
	cert, err := loadTLSFiles(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("serve: listen on %s: %w", cfg.Addr, err)
	}
	if cert == nil {
		if cert, err = autoTLS(cfg, ln.Addr()); err != nil {
			ln.Close()
			return nil, nil, nil, err
		}
	}
	var tlsCfg *tls.Config
	if cert != nil {
		tlsCfg = serverTLS(*cert)
	}
	return ln, cert, tlsCfg, nil
}

// startHelpers starts the memory governor and, when mln is set, the
// metrics server; both stop when ctx ends, and wg waits for them.
func startHelpers(ctx context.Context, wg *sync.WaitGroup, srv *signaling.Server, mln net.Listener, src metricsSource, log *slog.Logger, stdout io.Writer) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		governMemory(ctx, srv, log)
	}()
	if mln == nil {
		return
	}
	fmt.Fprintf(stdout, "cloakroom: metrics on http://%s/metrics\n", mln.Addr())
	wg.Add(1)
	go func() {
		defer wg.Done()
		runMetrics(ctx, mln, src, log)
	}()
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

// loadTLSFiles loads --tls-cert/--tls-key (nil: none given); serve calls it
// before it listens, so a bad file leaves no port bound.
func loadTLSFiles(cfg serveConfig) (*tls.Certificate, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("serve: TLS certificate: %w", err)
	}
	return &c, nil
}

// autoTLS makes (or reuses) the --tls auto certificate for the address
// the server listens on (nil: --tls is not auto).
func autoTLS(cfg serveConfig, addr net.Addr) (*tls.Certificate, error) {
	if cfg.TLS != "auto" {
		return nil, nil
	}
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
