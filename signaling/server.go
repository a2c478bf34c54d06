// Package signaling is Cloakroom's HTTP+WebSocket server: rooms, members,
// presence, sealed-signal forwarding and the store-and-forward relay
// (docs/PROTOCOL.md, docs/RELAY.md). It never holds a key: everything it
// routes is sealed by the clients, and it checks only the room verifier.
//
// Per connection there are two goroutines, both owned by the connection
// (and by the server, whose Close waits for them): the reader and the writer
// (the only one that writes to the socket; it also delivers the relay items
// owed to the member, within a window of unacked bytes).
package signaling

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// Config sets up a Server. Zero fields get defaults.
type Config struct {
	// Relay sets the relay store the server builds and owns: its caps and
	// TTL (zero fields get the store's defaults, see store.Config.Fill).
	// The TTL also bounds how long an offline member is remembered. Now
	// defaults to Config.Now; OnEvict must be nil (the server sets it).
	Relay          store.Config
	Static         http.Handler  // optional: serves the web client at "/"
	Logger         *slog.Logger  // optional (default: discard)
	AllowedOrigins []string      // extra Origin values allowed besides the request's own host
	MaxRooms       int           // default 10000
	MaxMembers     int           // per room, default 100
	MaxConns       int           // WebSocket connections at once, default 10000
	PutTimeout     time.Duration // how long an upload waits for relay space; default 30 s
	AckStall       time.Duration // an online member acking nothing this long counts as offline for the relay; default 60 s
	SendQueue      int           // control messages queued per connection; default 256
	DeliveryWindow int64         // relay bytes in flight (unacked) per connection; default 4 MiB
	Now            func() time.Time

	// Per client address (an IPv4 address or an IPv6 /64). Zero fields
	// get defaults; a negative rate (or MaxConnsPerAddr) means no limit.
	// Rates are per second; bursts are bucket sizes.
	MaxConnsPerAddr int     // WebSocket connections at once, default 100
	MaxRoomsPerAddr int     // rooms made from the address still on the server, default 50
	JoinRate        float64 // new WebSocket connections, default 5 (burst 50)
	JoinBurst       int
	MsgRate         float64 // control messages other than ack, default 200 (burst 2000)
	MsgBurst        int
	UploadRate      int64 // relay chunk bytes; default: no limit
	UploadBurst     int64 // default: an eighth of UploadRate, at least 4 MiB
	// UploadRateLAN replaces UploadRate for a loopback, private (RFC 1918,
	// fc00::/7) or link-local address (clientaddr.Local); default:
	// UploadRate. Its burst is an eighth of it, at least 4 MiB.
	UploadRateLAN int64

	// Timing of the WebSocket and of the HTTP server (Run). Zero fields get
	// defaults.
	JoinTimeout       time.Duration // the first frame must be a join within this; default 10 s
	HandshakeTimeout  time.Duration // WebSocket upgrade; default 10 s
	PingInterval      time.Duration // default protocol.PingInterval
	PongWait          time.Duration // drop a client silent this long; default protocol.PongWait
	ReadHeaderTimeout time.Duration // HTTP request headers; default 10 s
	IdleTimeout       time.Duration // idle keep-alive HTTP connections; default 120 s
	MaxHeaderBytes    int           // HTTP request headers; default 16 KiB

	// ICE, if set, returns the ICE (TURN) servers and credentials for a
	// joined member, identified by a TURN user id (member and room), and
	// when they expire; they go out in welcome and in answer to a turn
	// request. Only members who joined with the room's verifier ever get
	// them. host is the Host the member's connection reached the server
	// by (the request's, as the client sent it: check it before use; ""
	// when unknown), for URLs that must name the server as the client
	// does (turns: on the HTTPS port).
	ICE func(user, host string) ([]protocol.ICEServer, time.Time)
	// OnForget, if set, is called (with the server's lock held: it must
	// not call back) with the TURN user id of a member forgotten for good —
	// it left, or stayed offline past the relay TTL — so that its
	// credentials can be revoked before they expire.
	OnForget func(user string)
	// OnFrame, if set, is called with a copy of every frame received from
	// any client (an audit tap for tests).
	OnFrame func(binary bool, data []byte)

	// Bus, if set, makes the server one node of a cluster that shares
	// rooms with the others (docs/SCALING.md); nil: a single node.
	Bus Bus
}

// Defaults and fixed limits.
const (
	defaultMaxRooms   = 10000
	defaultMaxMembers = 100
	defaultMaxConns   = 10000
	defaultPutTimeout = 30 * time.Second
	defaultAckStall   = time.Minute
	defaultSendQueue  = 256
	defaultWindow     = 4 << 20

	defaultMaxConnsPerAddr = 100
	defaultMaxRoomsPerAddr = 50
	defaultJoinRate        = 5
	defaultJoinBurst       = 50
	defaultMsgRate         = 200
	defaultMsgBurst        = 2000
	defaultUploadBurst     = 4 << 20
	defaultJoinTimeout     = 10 * time.Second
	defaultHandshake       = 10 * time.Second
	defaultHeaderTimeout   = 10 * time.Second
	defaultIdleTimeout     = 120 * time.Second
	defaultMaxHeaderBytes  = 16 << 10

	msgWait         = 2 * time.Second // longest a message waits for its rate; then rate_limited
	closeGrace      = 2 * time.Second // wait for the peer's close reply this long
	maxBadRequests  = 16              // a client is cut off after this many errors
	maxFlightItems  = 4096            // items in flight per connection (besides bytes)
	maxFilesPerRoom = 1024            // relay file transfers tracked per room
	progressEvery   = 16              // chunks acked between progress messages (1 MiB: a relay-first upload keeps a short window on them)
)

// Stats counts what the server holds.
type Stats struct {
	Rooms, Members, Online, Conns int
	CutOff                        int64       // connections cut off because their send queue was full
	ConnsTotal                    int64       // WebSocket connections accepted since start
	HTTPConns                     int         // HTTP connections open on Run's server (not yet WebSockets)
	Addrs                         int         // client addresses tracked for per-address limits
	Relay                         store.Stats // what the relay store holds
	// Limited counts refusals (and upload throttling) per limit, by
	// Limit.String(); every limit is present.
	Limited map[string]int64
}

// Server is the signaling and relay server. Create it with New and serve
// Handler(); Close ends every connection.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	upgrader websocket.Upgrader
	handler  http.Handler
	now      func() time.Time
	done     chan struct{} // closed by Close
	cutOff   atomic.Int64
	accepted atomic.Int64
	limited  counters
	addrs    *addrTable
	http     httpConns
	sessions sessionTable // HTTP fallback sessions by token
	bus      Bus          // nil for a single node
	out      *outbox      // events for the bus (publishLoop)
	keys     keyTable     // cluster keys of relay items
	early    earlyTracker // which copy of an item to apply (cluster_early.go)
	pending  pendingAcks  // acks of items not stored yet

	// Set only by tests (export_test.go) before the server is used.
	joinTimeout      time.Duration // default joinTimeout
	hookDisconnected func()        // called after a connection is cleaned up
	hookHTTPClosed   func()        // called after an HTTP (non-WebSocket) connection closed

	mu     sync.Mutex
	rooms  map[string]*room
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup // connection handlers
}

// New validates cfg, fills defaults and returns a server.
func New(cfg Config) (*Server, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		now:         cfg.Now,
		done:        make(chan struct{}),
		joinTimeout: cfg.JoinTimeout,
		rooms:       make(map[string]*room),
		conns:       make(map[*conn]struct{}),
	}
	relay := cfg.Relay
	relay.OnEvict = s.onEvict
	st, err := store.New(relay)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.store = st
	s.addrs = newAddrTable(&s.cfg)
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		// ReadBufferSize 0 reuses net/http's 4 KiB reader; large frame reads
		// bypass it. Write buffers are held only while a message is written.
		WriteBufferSize:   64 << 10,
		WriteBufferPool:   &sync.Pool{},
		CheckOrigin:       s.checkOrigin,
		EnableCompression: false,
	}
	s.handler = s.routes()
	if cfg.Bus != nil {
		s.bus, s.out = cfg.Bus, newOutbox()
		go s.publishLoop()
	}
	return s, nil
}

// Defaults returns the configuration New uses for a zero Config, for
// front ends (the serve flags) that show and start from these values.
func Defaults() Config {
	var c Config
	_ = c.fill() // a zero Config is valid
	return c
}

// Validate checks c as New does, without building anything, so a caller
// can refuse a bad configuration before it opens listeners.
func (c Config) Validate() error { return c.fill() }

func (c *Config) fill() error {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Relay.Now == nil {
		c.Relay.Now = c.Now
	}
	if err := c.Relay.Fill(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	switch {
	case c.Relay.OnEvict != nil:
		return fmt.Errorf("%w: Relay.OnEvict is the server's own", ErrConfig)
	case c.MaxRooms < 0, c.MaxMembers < 0, c.MaxConns < 0, c.SendQueue < 0:
		return fmt.Errorf("%w: negative limit", ErrConfig)
	case c.PutTimeout < 0, c.AckStall < 0, c.DeliveryWindow < 0, c.UploadBurst < 0,
		c.JoinTimeout < 0, c.HandshakeTimeout < 0, c.PingInterval < 0, c.PongWait < 0,
		c.ReadHeaderTimeout < 0, c.IdleTimeout < 0, c.MaxHeaderBytes < 0, c.JoinBurst < 0, c.MsgBurst < 0:
		return fmt.Errorf("%w: negative duration, size or burst", ErrConfig)
	case c.PongWait != 0 && c.PingInterval != 0 && c.PongWait <= c.PingInterval,
		c.PongWait != 0 && c.PingInterval == 0 && c.PongWait <= protocol.PingInterval:
		return fmt.Errorf("%w: PongWait must be longer than PingInterval", ErrConfig)
	case c.MaxMembers > protocol.MaxMembers:
		return fmt.Errorf("%w: MaxMembers %d over the protocol limit %d", ErrConfig, c.MaxMembers, protocol.MaxMembers)
	}
	c.MaxRooms = or(c.MaxRooms, defaultMaxRooms)
	c.MaxMembers = or(c.MaxMembers, defaultMaxMembers)
	c.MaxConns = or(c.MaxConns, defaultMaxConns)
	c.PutTimeout = or(c.PutTimeout, defaultPutTimeout)
	c.AckStall = or(c.AckStall, defaultAckStall)
	c.SendQueue = or(c.SendQueue, defaultSendQueue)
	c.DeliveryWindow = or(c.DeliveryWindow, defaultWindow)
	c.MaxConnsPerAddr = or(c.MaxConnsPerAddr, defaultMaxConnsPerAddr)
	c.MaxRoomsPerAddr = or(c.MaxRoomsPerAddr, defaultMaxRoomsPerAddr)
	c.JoinRate = or(c.JoinRate, defaultJoinRate)
	c.JoinBurst = or(c.JoinBurst, defaultJoinBurst)
	c.MsgRate = or(c.MsgRate, defaultMsgRate)
	c.MsgBurst = or(c.MsgBurst, defaultMsgBurst)
	c.UploadBurst = max(or(c.UploadBurst, max(defaultUploadBurst, c.UploadRate/8)), protocol.MaxFrameBytes)
	c.UploadRateLAN = or(c.UploadRateLAN, c.UploadRate)
	if c.UploadRate == 0 {
		c.UploadRate = -1
	}
	if c.UploadRateLAN == 0 {
		c.UploadRateLAN = -1
	}
	c.JoinTimeout = or(c.JoinTimeout, defaultJoinTimeout)
	c.HandshakeTimeout = or(c.HandshakeTimeout, defaultHandshake)
	c.PingInterval = or(c.PingInterval, protocol.PingInterval)
	c.PongWait = or(c.PongWait, protocol.PongWait)
	c.ReadHeaderTimeout = or(c.ReadHeaderTimeout, defaultHeaderTimeout)
	c.IdleTimeout = or(c.IdleTimeout, defaultIdleTimeout)
	c.MaxHeaderBytes = or(c.MaxHeaderBytes, defaultMaxHeaderBytes)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Handler serves GET /ws (the WebSocket), its HTTP fallback (/h/...),
// GET /healthz and, for every other
// path, Config.Static (404 when nil).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /h/open", s.serveOpen)
	mux.HandleFunc("GET /h/down", s.serveDown)
	mux.HandleFunc("POST /h/up", s.serveUp)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
	static := s.cfg.Static
	if static == nil {
		static = http.NotFoundHandler()
	}
	mux.Handle("/", static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// On every answer (the web client's handler adds its CSP): the
		// room secret lives in the page's URL fragment.
		h := w.Header()
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

// Close sends error{going_away} and a 1001 close to every client, waits
// for the connection goroutines to end and closes the relay store. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	var conns []*conn
	first := !s.closed
	if first {
		s.closed = true
		close(s.done)
		for c := range s.conns {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown(goingAway())
	}
	s.wg.Wait()
	if s.bus != nil && first {
		s.drain() // the members' offline events are queued (disconnected)
	}
	s.store.Close()
	return nil
}

// runCleanup sweeps every interval until ctx is done or the server is
// closed.
func (s *Server) runCleanup(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for s.tick(ctx, t.C) {
		s.Sweep()
		s.addrs.sweep(time.Now())
	}
}

// tick waits for the next tick: false once ctx is done or the server closed.
func (s *Server) tick(ctx context.Context, c <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	case <-c:
		return true
	}
}

// Config returns the server's configuration with every default filled in
// (Relay.MaxBytes is the relay's effective cap).
func (s *Server) Config() Config { return s.cfg }

// RelayOwed returns how many relay items and bytes of room are still owed
// to member.
func (s *Server) RelayOwed(room, member string) (items int, bytes int64) {
	return s.store.Owed(room, member)
}

// Stats returns current counts.
func (s *Server) Stats() Stats {
	relay := s.store.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Rooms: len(s.rooms), Conns: len(s.conns), CutOff: s.cutOff.Load(), ConnsTotal: s.accepted.Load(),
		HTTPConns: s.http.open(), Addrs: s.addrs.size(), Limited: s.limited.snapshot(), Relay: relay}
	for _, r := range s.rooms {
		st.Members += len(r.members)
		for _, m := range r.members {
			if m.conn != nil {
				st.Online++
			}
		}
	}
	return st
}
