// Package client is the Go client of Cloakroom: it joins a room from a link or
// mini code, keeps the member list, sends and receives chat and files, and
// reconnects by itself when the connection drops. Files stream from and to
// disk in chunks; nothing holds a whole file in memory.
//
// Paths (Options.Transport): a direct WebRTC data channel, one relayed by the
// room's TURN server, and the server's store-and-forward relay carry the very
// same sealed chunks; auto tries them in that order per recipient.
package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"cloakroom/client/transfer"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// Options configure a client. Zero values get defaults.
type Options struct {
	// Server is the base URL ("https://host:port") used when the invite holds
	// none (a mini code or bare fragment).
	Server string
	// Transport is the path for files (default auto: a direct data channel,
	// then one relayed by TURN, then the relay store, per recipient; the
	// others force one path and fail clearly when it cannot connect).
	Transport protocol.Transport
	// ICETimeout bounds each peer-to-peer attempt (default 10 s).
	ICETimeout time.Duration
	// Dir is where received files are written (default ".").
	Dir string
	// Logger gets diagnostics; it never receives keys or plaintext.
	Logger *slog.Logger
	// Dialer dials the WebSocket (TLS settings live here).
	Dialer *websocket.Dialer
	// OnChat is called for every chat message, once, from the read loop.
	OnChat func(Chat)
	// OnPresence is called when a member joins, leaves, or changes online state.
	OnPresence func(Member, string)
	// OnProgress is called as transfers advance (sending and receiving).
	OnProgress func(Progress)
	// OnState is called as the connection to the server changes.
	OnState func(protocol.ConnState)
	// OfflineGrace is how long a send waits for a recipient that went offline
	// mid-transfer before reporting it as not (yet) delivered. Default 20 s.
	OfflineGrace time.Duration
}

// Chat is one chat message.
type Chat struct {
	From string // member id
	Text string
	ID   string // envelope id (hex), unique per message
}

// Member is another member of the room, with a verified announcement.
type Member struct {
	ID     string
	Pub    []byte
	Online bool
}

// Client is a member of one room.
type Client struct {
	opts   Options
	log    *slog.Logger
	keys   *crypto.RoomKeys
	ident  *crypto.Identity
	id     string
	wsURL  string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the connection loop ends

	mu        sync.Mutex
	conn      *websocket.Conn // current connection, nil while reconnecting
	connReady chan struct{}   // closed when conn is (re)established
	connGen   uint64          // connections made so far; guarded by mu
	awaitBack []string        // members online when the connection last broke; guarded by mu
	backBy    time.Time       // until when a chat waits for them; guarded by mu
	members   map[string]*Member
	seen      map[[16]byte]bool // envelope ids already handled
	sends     map[string]*sendState
	recv      *transfer.Receiver
	files     chan File
	api       *webrtc.API
	peers     map[string]*peerConn    // by session id
	pairs     map[string]*crypto.Pair // by member id, one per session
	ice       []protocol.ICEServer    // TURN servers from the welcome
	iceExp    time.Time
	iceFresh  chan struct{} // closed when fresh ICE credentials arrive
	wg        sync.WaitGroup
	ttl       time.Duration
	closeErr  error

	writeMu  sync.Mutex // one writer at a time on conn
	signalMu sync.Mutex // seal+write of signals, so their counters stay in order
}

// Dial joins the room named by invite (a link, a fragment or a mini code). It
// returns once the server has welcomed the client.
func Dial(ctx context.Context, invite string, opts Options) (*Client, error) {
	server, secret, err := crypto.ParseInvite(invite)
	if err != nil {
		return nil, fmt.Errorf("room link or code: %w", err)
	}
	if server == "" {
		server = opts.Server
	}
	if server == "" {
		return nil, fmt.Errorf("a mini code needs a server: pass --server URL or set CLOAKROOM_SERVER: %w", ErrNoServer)
	}
	c, err := newClient(server, secret, opts)
	if err != nil {
		return nil, err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.recv.Run(c.ctx)
	}()
	go c.run(conn)
	return c, nil
}

func newClient(server string, secret crypto.Secret, opts Options) (*Client, error) {
	wsURL, err := websocketURL(server)
	if err != nil {
		return nil, err
	}
	t, err := protocol.ParseTransport(string(opts.Transport))
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrTransport)
	}
	opts.Transport = t
	if opts.Dir == "" {
		opts.Dir = "."
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dialer == nil {
		opts.Dialer = &websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	}
	if opts.OfflineGrace == 0 {
		opts.OfflineGrace = 20 * time.Second
	}
	if opts.ICETimeout == 0 {
		opts.ICETimeout = 10 * time.Second
	}
	ident, err := crypto.NewIdentity()
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts: opts, log: opts.Logger, keys: crypto.DeriveRoom(secret), ident: ident,
		id: uuid.NewString(), wsURL: wsURL, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		connReady: make(chan struct{}), members: map[string]*Member{}, seen: map[[16]byte]bool{},
		sends: map[string]*sendState{}, files: make(chan File, 1024), api: NewWebRTCAPI(opts.Logger),
		peers: map[string]*peerConn{}, pairs: map[string]*crypto.Pair{}, iceFresh: make(chan struct{}),
	}
	c.recv = transfer.NewReceiver(transfer.Config{Dir: opts.Dir, RoomID: c.keys.RoomID, Log: opts.Logger, Host: recvHost{c}})
	return c, nil
}

func websocketURL(server string) (string, error) {
	s := strings.TrimRight(strings.TrimSpace(server), "/")
	switch {
	case strings.HasPrefix(s, "https://"):
		return "wss://" + strings.TrimPrefix(s, "https://") + "/ws", nil
	case strings.HasPrefix(s, "http://"):
		return "ws://" + strings.TrimPrefix(s, "http://") + "/ws", nil
	}
	return "", fmt.Errorf("server %q: want http:// or https:// URL: %w", server, ErrNoServer)
}

// ID returns this member's id.
func (c *Client) ID() string { return c.id }

// Members returns the other members with verified announcements.
func (c *Client) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, *m)
	}
	return out
}

// OnlineMembers returns the ids of the other members currently online.
func (c *Client) OnlineMembers() []string {
	var ids []string
	for _, m := range c.Members() {
		if m.Online {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// Leave tells the server this member leaves for good, then closes.
func (c *Client) Leave() error {
	c.cancel() // no reconnecting when the server closes after the leave
	_ = c.writeJSON(leaveMsg())
	return c.Close()
}

// Close disconnects and stops every goroutine of the client.
func (c *Client) Close() error {
	c.mu.Lock()
	peers := make([]*peerConn, 0, len(c.peers))
	for _, p := range c.peers {
		peers = append(peers, p)
	}
	c.mu.Unlock()
	// Let senders finish: a sender closes its session once it has our
	// verdict on its file, so wait (briefly) for that before closing ours.
	grace, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, p := range peers {
		if !p.offerer && p.isReady() {
			select {
			case <-p.failed:
			case <-grace.Done():
			}
		}
		p.close()
	}
	c.cancel()
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		c.writeMu.Lock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.writeMu.Unlock()
		_ = conn.Close()
	}
	<-c.done
	c.wg.Wait()
	return nil
}

// Done is closed once the client has stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// http header for the dial: the CLI sends no Origin.
func dialHeader() http.Header { return http.Header{} }

var _ io.Closer = (*Client)(nil)
