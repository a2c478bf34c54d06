package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	pionturn "github.com/pion/turn/v4"

	"cloakroom/internal/auth"
	"cloakroom/internal/pionlog"
	"cloakroom/internal/udpbatch"
)

// Defaults.
const (
	DefaultPort         = 3478             // TURN over UDP and TCP (RFC 8656)
	DefaultTLSPort      = 5349             // TURN over TLS (RFC 8656)
	DefaultAddr         = "127.0.0.1:3478" // DefaultPort on loopback
	DefaultRealm        = "cloakroom"
	DefaultRelayPortMin = 49152 // IANA dynamic range, coturn's default
	DefaultRelayPortMax = 65535
	// A browser allocates once per TURN URL (UDP, TCP, TLS) for every peer
	// connection, and every file to every member is its own session: 30
	// lets one member hold about ten TURN sessions at once.
	DefaultMaxAllocationsPerUser = 30
	DefaultMaxAllocations        = 1000
	// One address (an IPv4 address or an IPv6 /64) may hold this many
	// allocations: about three members behind one NAT each at the
	// per-user cap.
	DefaultMaxAllocationsPerAddr = 100
	// TCP and TLS connections are counted apart from allocations: in total,
	// and per client address, so one host cannot hold every slot.
	DefaultMaxConns        = 1000
	DefaultMaxConnsPerAddr = 100
	// DefaultPreAuthTimeout closes a TCP/TLS connection that has no
	// allocation (an authenticated Allocate answered with success) this long
	// after it was accepted, whatever else it sends.
	DefaultPreAuthTimeout = 10 * time.Second
)

// closeWait bounds how long Close waits for pion's goroutines.
const closeWait = 5 * time.Second

// Config configures the TURN server. Only Secret is required.
type Config struct {
	// Addr is "HOST:PORT" for both the UDP and the TCP listener
	// (DefaultAddr; ":3478" = all interfaces; port 0 = any free port).
	Addr string
	// TLSAddr, if set, is "HOST:PORT" for TURN over TLS ("turns:"),
	// served with TLSConfig.
	TLSAddr   string
	TLSConfig *tls.Config
	// TLSListener, if set, hands the server TURN-over-TLS connections
	// whose TLS is done, e.g. Mux.TURN() on the HTTPS port. The server
	// closes it (on Close, or when New fails). URLs does not list it: the caller knows the name its
	// clients reach that port by.
	TLSListener net.Listener
	// PublicIP is the relay address announced to clients, IPv4. nil =
	// Addr's IP if it is a specific IPv4 address, else the first IPv4
	// address of an up non-loopback interface, else 127.0.0.1. Relay
	// sockets bind to it when it is a local address, else to 0.0.0.0
	// (behind 1:1 NAT).
	PublicIP net.IP
	// RelayPortMin and RelayPortMax bound the relay ports
	// (DefaultRelayPortMin-DefaultRelayPortMax).
	RelayPortMin, RelayPortMax int
	// Secret is the TURN REST shared secret (coturn static-auth-secret).
	Secret []byte
	// Realm defaults to DefaultRealm.
	Realm string
	// AllowPrivate allows relaying to RFC 1918, CGNAT and ULA peers (LAN
	// deployments); AllowLoopback to loopback peers (tests on 127.0.0.1).
	AllowPrivate  bool
	AllowLoopback bool
	// MaxAllocationsPerUser caps the allocations of one user id (the id part
	// of "expiry:id"), MaxAllocationsPerAddr those of one client address,
	// MaxAllocations those of everyone.
	MaxAllocationsPerUser int
	MaxAllocationsPerAddr int
	MaxAllocations        int
	// MaxConns caps TCP/TLS connections in total, MaxConnsPerAddr per client
	// address; PreAuthTimeout is how long a connection may stay without an
	// allocation (DefaultPreAuthTimeout).
	MaxConns        int
	MaxConnsPerAddr int
	PreAuthTimeout  time.Duration
	Logger          *slog.Logger
	// Now is the clock for credential expiry (time.Now by default).
	Now func() time.Time
}

// Stats are the server's counters.
type Stats struct {
	Allocations       int    // live allocations
	BytesRelayed      uint64 // payload bytes through relay sockets, both directions
	AuthRefused       uint64 // requests with bad, malformed or expired credentials (401)
	PermissionRefused uint64 // peers refused by the policy (403 or a dropped Send)
	QuotaRefused      uint64 // allocations over a quota (486)
	RelayDropped      uint64 // datagrams between two relays of the server dropped on a full queue
}

// Server is a running TURN server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pion    *pionturn.Server
	udpAddr *net.UDPAddr
	tlsPort int
	public  net.IP
	gate    *gate
	quota   *quota
	stats   counters
	live    tracker
	onEvent func(string) // test hook, see newServer

	mu      sync.Mutex
	conns   map[*gatedConn]struct{}
	perAddr map[string]int // TCP/TLS connections per addrKey
	closed  bool

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the listeners and starts the server.
func New(cfg Config) (*Server, error) { return newServer(cfg, nil) }

// newServer is New with a hook called on "created" and "deleted"
// allocation events (tests wait on it).
func newServer(cfg Config, onEvent func(string)) (*Server, error) {
	if err := cfg.fill(); err != nil {
		closeListener(cfg.TLSListener)
		return nil, err
	}
	udp, tcp, err := listenPair(cfg.Addr)
	if err != nil {
		closeListener(cfg.TLSListener)
		return nil, err
	}
	listeners := []net.Listener{tcp}
	s := &Server{cfg: cfg, log: cfg.Logger, udpAddr: udp.LocalAddr().(*net.UDPAddr),
		onEvent: onEvent, conns: make(map[*gatedConn]struct{}), perAddr: make(map[string]int)}
	if cfg.TLSAddr != "" {
		tl, err := listenTLS(cfg.TLSAddr, cfg.TLSConfig)
		if err != nil {
			_, _ = udp.Close(), tcp.Close()
			closeListener(cfg.TLSListener)
			return nil, err
		}
		listeners = append(listeners, tl)
		s.tlsPort = tl.Addr().(*net.TCPAddr).Port
	}
	if cfg.TLSListener != nil {
		listeners = append(listeners, cfg.TLSListener)
	}
	if err := s.start(udp, listeners); err != nil {
		_ = udp.Close()
		for _, l := range listeners {
			_ = l.Close()
		}
		return nil, err
	}
	return s, nil
}

// Validate checks cfg as New does (IPv4 PublicIP, Secret, TLS, port range,
// caps) without opening anything, so a caller can refuse a bad
// configuration before it opens other listeners.
func (cfg Config) Validate() error { return cfg.fill() }

// fill checks cfg and fills in the defaults.
func (cfg *Config) fill() error {
	switch {
	case len(cfg.Secret) == 0:
		return ErrNoSecret
	case cfg.PublicIP != nil && cfg.PublicIP.To4() == nil:
		return ErrPublicIP
	case cfg.TLSAddr != "" && !hasCert(cfg.TLSConfig):
		return ErrTLSConfig
	case cfg.MaxAllocationsPerUser < 0 || cfg.MaxAllocations < 0 || cfg.MaxAllocationsPerAddr < 0,
		cfg.MaxConns < 0 || cfg.MaxConnsPerAddr < 0 || cfg.PreAuthTimeout < 0:
		return ErrAllocationCap
	}
	cfg.Secret = append([]byte(nil), cfg.Secret...)
	setDefault(&cfg.Addr, DefaultAddr)
	setDefault(&cfg.Realm, DefaultRealm)
	setDefault(&cfg.RelayPortMin, DefaultRelayPortMin)
	setDefault(&cfg.RelayPortMax, DefaultRelayPortMax)
	setDefault(&cfg.MaxAllocationsPerUser, DefaultMaxAllocationsPerUser)
	setDefault(&cfg.MaxAllocations, DefaultMaxAllocations)
	setDefault(&cfg.MaxAllocationsPerAddr, DefaultMaxAllocationsPerAddr)
	setDefault(&cfg.MaxConns, DefaultMaxConns)
	setDefault(&cfg.MaxConnsPerAddr, DefaultMaxConnsPerAddr)
	setDefault(&cfg.PreAuthTimeout, DefaultPreAuthTimeout)
	if cfg.RelayPortMin < 1 || cfg.RelayPortMin > cfg.RelayPortMax || cfg.RelayPortMax > 65535 {
		return fmt.Errorf("%w: %d-%d", ErrPortRange, cfg.RelayPortMin, cfg.RelayPortMax)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func closeListener(l net.Listener) {
	if l != nil {
		_ = l.Close()
	}
}

func hasCert(c *tls.Config) bool {
	return c != nil && (len(c.Certificates) > 0 || c.GetCertificate != nil || c.GetConfigForClient != nil)
}

// start builds the policy, the gate and pion's server on the listeners.
func (s *Server) start(udp *net.UDPConn, listeners []net.Listener) error {
	cfg := &s.cfg
	s.public = cfg.PublicIP.To4()
	if s.public == nil {
		s.public = detectPublicIP(s.udpAddr.IP)
	}
	pol := newPolicy(cfg, s.public, interfaceAddrs())
	s.gate = &gate{realm: cfg.Realm, secret: cfg.Secret, now: cfg.Now, policy: pol, stats: &s.stats, log: s.log,
		revoked: newRevocations()}
	s.quota = newQuota(cfg.MaxAllocationsPerUser, cfg.MaxAllocationsPerAddr, cfg.MaxAllocations)
	gen := &relayGen{bindIP: relayBindIP(s.public), announce: s.public,
		min: cfg.RelayPortMin, max: cfg.RelayPortMax, bytes: &s.stats.bytes, dropped: &s.stats.dropped, hub: relayHub{announce: s.public}}
	sc := s.pionConfig(udp, listeners, gen, pol)
	p, err := pionturn.NewServer(sc)
	if err != nil {
		return fmt.Errorf("turn: %w", err)
	}
	s.pion = p
	s.log.Info("turn: listening", "addr", s.udpAddr, "tls_port", s.tlsPort, "relay_ip", s.public,
		"relay_ports", strconv.Itoa(cfg.RelayPortMin)+"-"+strconv.Itoa(cfg.RelayPortMax))
	return nil
}

// pionConfig wraps the listeners in the gate and wires our handlers.
func (s *Server) pionConfig(udp *net.UDPConn, listeners []net.Listener, gen *relayGen, pol *policy) pionturn.ServerConfig {
	s.live.add()
	pc := &gatedPacketConn{UDPConn: udp, batch: udpbatch.NewReader(udp, relayDgram), gate: s.gate, exit: s.live.once()}
	sc := pionturn.ServerConfig{
		Realm:         s.cfg.Realm,
		AuthHandler:   s.authHandler,
		QuotaHandler:  s.quotaHandler,
		EventHandler:  pionturn.EventHandler{OnAllocationCreated: s.created, OnAllocationDeleted: s.deleted},
		LoggerFactory: pionlog.New(s.log, slog.LevelWarn),
		PacketConnConfigs: []pionturn.PacketConnConfig{
			{PacketConn: pc, RelayAddressGenerator: gen, PermissionHandler: pol.permit},
		},
	}
	for _, l := range listeners {
		s.live.add()
		gl := &gatedListener{Listener: l, s: s, exit: s.live.once()}
		sc.ListenerConfigs = append(sc.ListenerConfigs,
			pionturn.ListenerConfig{Listener: gl, RelayAddressGenerator: gen, PermissionHandler: pol.permit})
	}
	return sc
}

// authHandler is pion's AuthHandler (the gate has checked the same before).
func (s *Server) authHandler(username, realm string, _ net.Addr) ([]byte, bool) {
	key, ok := s.gate.key(username, realm)
	if !ok {
		s.stats.authRefused.Add(1)
	}
	return key, ok
}

func (s *Server) quotaHandler(username, _ string, src net.Addr) bool {
	if s.quota.reserve(userID(username), addrKey(src), time.Now()) {
		return true
	}
	s.stats.quotaRefused.Add(1)
	s.log.Debug("turn: allocation quota reached", "client", src, "user", userID(username))
	return false
}

func (s *Server) created(src, _ net.Addr, _, username, _ string, relay net.Addr, _ int) {
	s.quota.created(userID(username), addrKey(src))
	s.gate.revoked.allocated(src, userID(username))
	s.live.add()
	s.log.Debug("turn: allocation", "client", src, "user", userID(username), "relay", relay)
	if s.onEvent != nil {
		s.onEvent("created")
	}
}

func (s *Server) deleted(src, _ net.Addr, _, username, _ string) {
	s.quota.deleted(userID(username), addrKey(src))
	s.gate.revoked.closed(src)
	s.live.done()
	s.log.Debug("turn: allocation closed", "client", src, "user", userID(username))
	if s.onEvent != nil {
		s.onEvent("deleted")
	}
}

// track wraps an accepted TCP/TLS connection, or returns nil when the
// server is closed or at its connection cap, in total or for the client's
// address.
func (s *Server) track(c net.Conn) *gatedConn {
	key := addrKey(c.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns) >= s.cfg.MaxConns || s.perAddr[key] >= s.cfg.MaxConnsPerAddr {
		return nil
	}
	g := &gatedConn{Conn: c, framer: pionturn.NewSTUNConn(c), gate: s.gate,
		deadline: time.Now().Add(s.cfg.PreAuthTimeout)}
	if err := c.SetReadDeadline(g.deadline); err != nil {
		return nil
	}
	s.live.add()
	g.exit = s.live.once()
	g.close = sync.OnceValue(func() error {
		s.mu.Lock()
		delete(s.conns, g)
		if s.perAddr[key]--; s.perAddr[key] <= 0 {
			delete(s.perAddr, key)
		}
		s.mu.Unlock()
		_ = c.Close() // e.g. a TLS close_notify to a client already gone: nothing to do
		return nil
	})
	s.conns[g] = struct{}{}
	s.perAddr[key]++
	return g
}

// URLs returns the ICE server URLs of this server for clients, with host
// ("" = the relay address): TURN over UDP and TCP, and TLS when it is on.
func (s *Server) URLs(host string) []string {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		host = s.public.String()
	}
	hp := net.JoinHostPort(host, strconv.Itoa(s.udpAddr.Port))
	urls := []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
	if s.tlsPort != 0 {
		urls = append(urls, "turns:"+net.JoinHostPort(host, strconv.Itoa(s.tlsPort))+"?transport=tcp")
	}
	return urls
}

// Credentials mints TURN REST credentials for user valid for ttl.
func (s *Server) Credentials(user string, ttl time.Duration) (username, password string) {
	return auth.MintTURN(s.cfg.Secret, user, ttl, s.cfg.Now())
}

// Revoke ends user's credentials before their expiry (a member who left
// its room): its requests get 401 and nothing more is relayed for its
// allocations, which then expire unrefreshed. until is when its
// credentials would have expired anyway (the revocation is forgotten then).
func (s *Server) Revoke(user string, until time.Time) {
	s.gate.revoked.revoke(user, s.cfg.Now(), until)
	s.log.Debug("turn: credentials revoked", "user", user)
}

// Addr returns the UDP listener's address (the TCP listener has the same).
func (s *Server) Addr() net.Addr { return s.udpAddr }

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Allocations:       s.quota.allocations(),
		BytesRelayed:      s.stats.bytes.Load(),
		AuthRefused:       s.stats.authRefused.Load(),
		PermissionRefused: s.stats.permRefused.Load(),
		QuotaRefused:      s.stats.quotaRefused.Load(),
		RelayDropped:      s.stats.dropped.Load(),
	}
}

// Close stops the server, closes every connection and allocation, and
// waits for pion's goroutines. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	var err error
	if e := s.pion.Close(); e != nil {
		err = fmt.Errorf("turn: close: %w", e)
	}
	s.mu.Lock()
	s.closed = true
	conns := make([]*gatedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns { // pion leaves accepted connections open
		_ = c.Close()
	}
	if !s.live.wait(closeWait) {
		err = errors.Join(err, errCloseTimeout)
	}
	return err
}
