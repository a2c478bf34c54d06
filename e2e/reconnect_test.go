package e2e

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/client"
	"cloakroom/internal/protocol"
)

// TestOfflineChatDeliveredOnceOnReconnect: bob's connection goes through a
// TCP proxy that the test cuts. A chat sent while bob is offline reaches him
// exactly once when his client reconnects by itself, and a second cut and
// reconnect does not deliver it again.
func TestOfflineChatDeliveredOnceOnReconnect(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	proxy := newTCPProxy(t, ts.HTTP.Listener.Addr().String())
	alice := dialPeer(ctx, t, secret.Link(ts.URL), "alice", nil)
	// carol witnesses that the server stored alice's chat (it is owed to
	// every known member at once) while bob was still offline.
	carol := dialPeer(ctx, t, secret.Link(ts.URL), "carol", nil)
	bob := dialPeer(ctx, t, secret.Link(proxy.URL()), "bob", nil)
	meshOnline(ctx, t, alice, bob, carol)

	// Cut bob off and hold his reconnect attempts at the proxy.
	proxy.cut(true)
	waitPresence(ctx, t, alice, bob.ID(), protocol.EventOffline, 1)
	waitState(ctx, t, bob, "reconnecting", 1)
	const first = "sent while bob was offline"
	if err := alice.SendChat(ctx, first); err != nil {
		t.Fatalf("SendChat: %v", err)
	}
	waitChat(ctx, t, carol, "the offline chat", func(c client.Chat) bool { return c.Text == first })
	if n := count(bob.chats.snapshot(), func(c client.Chat) bool { return c.Text == first }); n != 0 {
		t.Fatalf("bob got the chat while cut off (%d times)", n)
	}

	proxy.release()
	waitState(ctx, t, bob, "restored", 1)
	waitChat(ctx, t, bob, "the offline chat", func(c client.Chat) bool { return c.Text == first && c.From == alice.ID() })
	waitPresence(ctx, t, alice, bob.ID(), protocol.EventOnline, 1)

	// A second cut; the client reconnects at once. The relay restarts
	// delivery from the oldest unacked item, so a chat sent after the
	// reconnect arriving proves the stream flows and anything redelivered
	// would already be in.
	proxy.cut(false)
	waitState(ctx, t, bob, "restored", 2)
	const second = "sent after the second reconnect"
	if err := alice.SendChat(ctx, second); err != nil {
		t.Fatalf("SendChat: %v", err)
	}
	got := waitChat(ctx, t, bob, "the second chat", func(c client.Chat) bool { return c.Text == second })
	if n := count(got, func(c client.Chat) bool { return c.Text == first }); n != 1 {
		t.Errorf("bob got the offline chat %d times, want exactly 1 (chats: %+v)", n, got)
	}
	if len(got) != 2 {
		t.Errorf("bob got %d chats, want 2: %+v", len(got), got)
	}
	if n := count(carol.chats.snapshot(), func(c client.Chat) bool { return c.Text == first }); n != 1 {
		t.Errorf("carol got the chat %d times, want 1", n)
	}
	if states := bob.states.snapshot(); count(states, func(s string) bool { return s == "connected" }) != 1 {
		t.Errorf("bob's states %v: want one \"connected\" then reconnecting/restored pairs", states)
	}
}

// TestCloseDuringReconnect: Close, called while the client's reconnect has
// its WebSocket up and waits for the server's welcome, returns, and the
// client stays closed. A man in the middle cuts the client's connection and
// then holds the welcome of its reconnect until Close has cancelled the
// client's context.
func TestCloseDuringReconnect(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	var welcomes atomic.Int32
	held := make(chan struct{})    // closed when the reconnect's welcome is held
	release := make(chan struct{}) // closed to let it through
	mitm := newWSMITM(t, ts.URL, mitmOpts{DownText: func(b []byte) []byte {
		if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypeWelcome && welcomes.Add(1) == 2 {
			close(held)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return b
	}})
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before the man in the middle waits for its sessions
	alice := dialPeer(ctx, t, secret.Link(ts.URL), "alice", nil)
	// Without a handshake timeout the dialer hands the client's own context
	// to NetDialContext: for a reconnect that is the context Close cancels.
	dialCtxs := make(chan context.Context, 16)
	bob := dialPeer(ctx, t, secret.Link(mitm.HTTP.URL), "bob", func(o *client.Options) {
		var d net.Dialer
		o.Dialer = &websocket.Dialer{
			ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10,
			NetDialContext: func(c context.Context, network, addr string) (net.Conn, error) {
				select {
				case dialCtxs <- c:
				default: // the test looks at the first two only
				}
				return d.DialContext(c, network, addr)
			},
		}
	})
	<-dialCtxs // Dial's own
	meshOnline(ctx, t, alice, bob)

	mitm.cut()
	waitState(ctx, t, bob, "reconnecting", 1)
	var clientCtx context.Context
	select {
	case clientCtx = <-dialCtxs:
	case <-ctx.Done():
		t.Fatal("no reconnect dial")
	}
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the reconnect's welcome never came")
	}

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = bob.Close()
	}()
	select {
	case <-clientCtx.Done(): // Close has started
	case <-ctx.Done():
		t.Fatal("Close did not cancel the client's context")
	}
	letGo()
	// A working Close returns within milliseconds. The bound only keeps a
	// hang from costing the whole test timeout: without pings forwarded by
	// the man in the middle the client's 45 s read deadline would end it,
	// and on a direct connection it would never end.
	hang := time.NewTimer(10 * time.Second)
	defer hang.Stop()
	select {
	case <-closed:
	case <-hang.C:
		t.Fatalf("Close called during a reconnect has not returned after 10 s (states %v): the client went on with the new connection", bob.states.snapshot())
	}
	select {
	case <-bob.Done():
	default:
		t.Error("Close returned but Done is not closed")
	}
	if n := count(bob.states.snapshot(), func(s string) bool { return s == "restored" }); n != 0 {
		t.Errorf("client reported \"restored\" %d times after Close", n)
	}
}

// TestDialHonorsContextDuringJoin: Dial returns with the context's error
// when its context ends while it waits for the server's welcome (a server
// that accepted the WebSocket but does not answer the join).
func TestDialHonorsContextDuringJoin(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	mitm := newWSMITM(t, ts.URL, mitmOpts{DownText: func(b []byte) []byte {
		if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypeWelcome {
			once.Do(func() { close(held) })
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return b
	}})

	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type dialResult struct {
		c   *client.Client
		err error
	}
	res := make(chan dialResult, 1)
	dialDone := make(chan struct{})
	dir := t.TempDir()
	go func() {
		defer close(dialDone)
		c, err := client.Dial(dctx, secret.Link(mitm.HTTP.URL), client.Options{Dir: dir})
		res <- dialResult{c, err}
	}()
	// Whatever happens, let the welcome through, wait for Dial and close
	// what it made before the server goes away.
	t.Cleanup(func() {
		close(release)
		<-dialDone
		select {
		case r := <-res:
			if r.c != nil {
				r.c.Close()
			}
		default:
		}
	})
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the welcome never came")
	}
	cancel()
	// A Dial that watches its context returns within milliseconds; the bound
	// only keeps a hang (45 s, the join's read deadline) from costing the
	// whole test timeout.
	hang := time.NewTimer(10 * time.Second)
	defer hang.Stop()
	select {
	case r := <-res:
		if r.err == nil {
			r.c.Close()
			t.Fatal("Dial succeeded after its context was cancelled")
		}
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("Dial error %v, want one wrapping context.Canceled", r.err)
		}
	case <-hang.C:
		t.Fatal("Dial ignores its context while it waits for the welcome: not returned 10 s after cancel")
	}
}

// TestMembersRefreshedOnReconnect: what a client missed while disconnected
// is corrected by the welcome of its reconnect: a member that went offline
// shows offline, and a member that left for good is no longer listed.
func TestMembersRefreshedOnReconnect(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	proxy := newTCPProxy(t, ts.HTTP.Listener.Addr().String())
	alice := dialPeer(ctx, t, secret.Link(proxy.URL()), "alice", nil)
	bob := dialPeer(ctx, t, secret.Link(ts.URL), "bob", nil)
	carol := dialPeer(ctx, t, secret.Link(ts.URL), "carol", nil)
	dave := dialPeer(ctx, t, secret.Link(ts.URL), "dave", nil)
	meshOnline(ctx, t, alice, bob, carol, dave)

	proxy.cut(true)
	waitPresence(ctx, t, dave, alice.ID(), protocol.EventOffline, 1)
	if err := bob.Leave(); err != nil {
		t.Fatalf("bob: Leave: %v", err)
	}
	_ = carol.Close()
	waitPresence(ctx, t, dave, bob.ID(), protocol.EventLeave, 1)
	waitPresence(ctx, t, dave, carol.ID(), protocol.EventOffline, 1)
	proxy.release()
	waitState(ctx, t, alice, "restored", 1)

	got := map[string]client.Member{}
	for _, m := range alice.Members() {
		got[m.ID] = m
	}
	if m, ok := got[bob.ID()]; ok {
		t.Errorf("after reconnecting alice still lists bob (online %v), who left for good while she was away", m.Online)
	}
	if m, ok := got[carol.ID()]; !ok || m.Online {
		t.Errorf("after reconnecting alice has carol listed %v, online %v; want listed offline", ok, m.Online)
	}
	if m, ok := got[dave.ID()]; !ok || !m.Online {
		t.Errorf("after reconnecting alice has dave listed %v, online %v; want listed online", ok, m.Online)
	}
	if online := alice.OnlineMembers(); !slices.Equal(online, []string{dave.ID()}) {
		t.Errorf("alice's online members %v, want only dave %s", online, dave.ID())
	}
}
