// Package client is the Go client of Cloakroom: it joins a room from a link or
// mini code, keeps the member list, sends and receives chat and files, and
// reconnects by itself when the connection drops. Files stream from and to
// disk in chunks; nothing holds a whole file in memory.
//
// Paths (Options.Transport): a direct WebRTC data channel, one relayed by the
// room's TURN server, and the server's store-and-forward relay carry the very
// same sealed chunks; auto tries them in that order per recipient.
//
// Inside, a Client ties three parts together: the room session (room: the
// WebSocket connection and its reconnecting, the verified members, chat,
// sealed signals), the peer sessions (peers, peerConn: one WebRTC connection
// per attempt with a member, with key confirmation), and the transfer engine
// (package client/transfer: manifests, sealing chunks, receiving to disk with
// resume). The Client drives sends across the paths (send.go, p2p.go,
// send_relay.go) and routes what the room hears (events.go).
package client

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

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
	// RungStagger: with Transport auto, the next rung of the ladder (TURN
	// after direct) starts when the one before has not connected within
	// this long, beside it, and the first to connect wins (default
	// DefaultRungStagger; negative: one after another, each to the end).
	RungStagger time.Duration
	// RelayWait: with Transport auto, how long a send waits for a
	// peer-to-peer session with a recipient before it starts that
	// recipient on the relay store; a session that connects later takes the
	// rest of the file over (docs/TRANSFERS.md, "Relay first"). Default
	// DefaultRelayWait; negative: the relay only once every rung failed.
	RelayWait time.Duration
	// Dir is where received files are written (default ".").
	Dir string
	// Logger gets diagnostics; it never receives keys or plaintext.
	Logger *slog.Logger
	// Dialer dials the WebSocket (TLS settings live here).
	Dialer *websocket.Dialer
	// Proxy picks an HTTP CONNECT proxy for the WebSocket (signaling and
	// relay) and for TURN over TCP and TLS (nil: none; the CLI passes
	// ProxyFromEnvironment). It replaces Dialer.Proxy.
	Proxy ProxyFunc
	// HostAddr, if set, limits the local addresses offered as host
	// candidates to those it accepts (nil: every interface). Tests on a
	// machine whose other tests add and remove addresses pass loopback
	// only: a session whose pair used a vanished address would break.
	HostAddr func(net.IP) bool
	// OnChat is called for every chat message, once, from the read loop.
	OnChat func(Chat)
	// OnPresence is called when a member joins, leaves, or changes online state.
	OnPresence func(Member, string)
	// OnProgress is called as transfers advance (sending and receiving).
	OnProgress func(Progress)
	// OnState is called as the connection to the server changes.
	OnState func(protocol.ConnState)
	// OnFallback is called once if the WebSocket is refused (the upgrade
	// answered otherwise, or the connection broke before the welcome) and
	// the client connected over the HTTP fallback instead, which it keeps
	// using; err says what happened to the WebSocket.
	OnFallback func(err error)
	// OfflineGrace is how long a send waits for a recipient that went offline
	// mid-transfer before reporting it as not (yet) delivered. Default 20 s.
	OfflineGrace time.Duration
	// FetchEarlier fetches every library entry an online member announces
	// (files shared before this member joined, or while it was away), not
	// only files sent to it now. Files it holds are served to other members
	// whatever this says.
	FetchEarlier bool
	// Sequential fetches files lowest chunk first (docs/PROTOCOL.md
	// "Fetcher schedule": the origin and other holders are asked by index
	// for the lowest missing chunks), so the beginning of a partial file is
	// usable — a player can read it — while the rest arrives. It spreads
	// chunks among fetchers less well than rarest-first. Files that come
	// through the relay arrive in the order their sender uploads them.
	Sequential bool
	// Links is how many links (peer connections, each its own SCTP
	// association) a fetch of a large file uses with its origin on one
	// rung, side by side, once the first is fast (default DefaultLinks;
	// 1: one; docs/PROTOCOL.md "Stripes").
	Links int
	// StripeMin is the smallest file fetched over several links (default
	// DefaultStripeMin).
	StripeMin int64
	// StripeRate is the rate (bytes/s) the first link must reach over its
	// first seconds before a fetch adds stripes (default
	// DefaultStripeRate; tests lower it).
	StripeRate float64
}

// Chat is one chat message.
type Chat struct {
	From string // member id
	// Name is the display name the author sent (a name signal), as sent:
	// neither unique nor verified, to be cleaned before it is shown; "" if
	// it sent none.
	Name string
	Text string
	ID   string    // envelope id (hex), unique per message
	Sent time.Time // the sender's clock when it sealed the message
	// Late: the message comes after later ones of its sender (the server
	// delivered out of order); it belongs before them.
	Late bool
	// Missing messages of this sender were not received just before this
	// one (dropped, or not yet arrived: a later one may come Late).
	Missing uint64
	// History: sent before this member joined (or while it was away),
	// given by a member who was online; shown in the authors' order.
	History bool
}

// Member is another member of the room, with a verified announcement.
type Member struct {
	ID     string
	Pub    []byte
	Online bool // the server says it is connected
	// Verified: since it last came online it answered a fresh challenge
	// sealed with its key (docs/SECURITY.md, "Replay and order"). A member
	// the server lists online without being there (a replayed
	// announcement) never is.
	Verified bool
}

// Client is a member of one room. It ties together the room session (the
// server connection, members, chat, signals), the peer sessions (one WebRTC
// connection per attempt with a member), and the transfer engine (package
// transfer); it drives sends across the paths and hands on what arrives.
type Client struct {
	opts  Options
	log   *slog.Logger
	room  *room
	peers *peers
	recv  *transfer.Receiver
	keys  *crypto.RoomKeys // the room's, immutable
	id    string           // this member's, immutable
	ctx   context.Context  // the room's: ends when the client closes
	files chan File
	wg    sync.WaitGroup // the receiver's loop, fetches, link offers
	lib   *library
	links *links

	mu       sync.Mutex
	sends    map[string]*sendState // relay rounds in progress, by file id
	fetching map[string]*fetch     // swarm receptions, by file id
	libHeard time.Time             // when the last lib signal arrived
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
	conn, err := c.room.connect(ctx)
	if err != nil {
		c.room.cancel()
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.recv.Run(c.ctx)
	}()
	go c.room.run(conn)
	return c, nil
}

func newClient(server string, secret crypto.Secret, opts Options) (*Client, error) {
	wsURL, err := websocketURL(server)
	if err != nil {
		return nil, err
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Proxy != nil {
		opts.Dialer = proxiedWebSocket(opts.Dialer, opts.Proxy, wsURL)
	}
	ident, err := crypto.NewIdentity()
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	r := newRoom(wsURL, secret, opts, ident)
	c := &Client{opts: opts, log: opts.Logger, room: r, keys: r.keys, id: r.id, ctx: r.ctx,
		files: make(chan File, 1024), sends: map[string]*sendState{}, fetching: map[string]*fetch{},
		lib: newLibrary(), links: newLinks()}
	c.peers = newPeers(r, opts, c.acceptSession)
	c.recv = transfer.NewReceiver(transfer.Config{Dir: opts.Dir, RoomID: r.keys.RoomID, Log: opts.Logger, Host: recvHost{c}})
	r.events = c
	return c, nil
}

func (opts Options) withDefaults() (Options, error) {
	t, err := protocol.ParseTransport(string(opts.Transport))
	if err != nil {
		return opts, fmt.Errorf("%v: %w", err, ErrTransport)
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
	if opts.RungStagger == 0 {
		opts.RungStagger = DefaultRungStagger
	}
	if opts.RelayWait == 0 {
		opts.RelayWait = DefaultRelayWait
	}
	return opts, nil
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

// Wire returns how the client reaches the server: WireWebSocket, or
// WireHTTP after a refused WebSocket (Options.OnFallback).
func (c *Client) Wire() string {
	c.room.mu.Lock()
	defer c.room.mu.Unlock()
	return cmp.Or(c.room.wireKind, WireWebSocket)
}

// Members returns the other members with verified announcements.
func (c *Client) Members() []Member { return c.room.Members() }

// OnlineMembers returns the ids of the other members currently online.
func (c *Client) OnlineMembers() []string { return c.room.OnlineMembers() }

// SendChat seals text under a fresh message key and hands it to the relay,
// which owes it to every known member, online or not.
func (c *Client) SendChat(ctx context.Context, text string) error { return c.room.sendChat(ctx, text) }

// Err returns why the client stopped on its own (a fatal server error), or nil.
func (c *Client) Err() error { return c.room.Err() }

// Done is closed once the client has stopped.
func (c *Client) Done() <-chan struct{} { return c.room.done }

// Leave tells the server this member leaves for good, then closes.
func (c *Client) Leave() error {
	c.room.cancel() // no reconnecting when the server closes after the leave
	_ = c.room.writeJSON(leaveMsg())
	return c.Close()
}

// Close disconnects and stops every goroutine of the client.
func (c *Client) Close() error {
	c.peers.closeAll()
	c.room.close()
	c.wg.Wait()
	for _, e := range c.lib.all() {
		e.close()
	}
	return nil
}

// acceptSession makes every peer session, offered or answered, a link once
// it is confirmed: its messages go to onDC from the first one.
func (c *Client) acceptSession(p *peerConn) {
	p.setHandler(func(data []byte) { c.onDC(p, data) })
	go func() {
		select {
		case <-p.ready:
			c.linkReady(p)
		case <-p.failed:
		}
	}()
}

var _ io.Closer = (*Client)(nil)
