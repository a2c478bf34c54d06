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
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// notifyConn closes a channel when the connection is closed.
type notifyConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *notifyConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// dialVanishing joins invite as a client that closes itself after its first
// received chunk; the channel is closed once its Close has returned. The
// OnProgress callback runs on the client's read loop: it starts Close in a
// goroutine and holds the read loop until Close has closed the socket, so
// the client acks nothing more whatever the scheduling.
func dialVanishing(ctx context.Context, t *testing.T, invite, name string) (*peer, <-chan struct{}) {
	t.Helper()
	var self atomic.Pointer[client.Client]
	sockClosed := make(chan struct{})
	var closing sync.Once
	closeDone := make(chan struct{})
	p := dialPeer(ctx, t, invite, name, func(o *client.Options) {
		dialer := &net.Dialer{}
		var first sync.Once
		o.Dialer = &websocket.Dialer{
			HandshakeTimeout: 15 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10,
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				nc := &notifyConn{Conn: c, closed: make(chan struct{})}
				first.Do(func() { nc.closed = sockClosed })
				return nc, nil
			},
		}
		record := o.OnProgress
		o.OnProgress = func(pr client.Progress) {
			record(pr)
			if pr.Sending {
				return
			}
			closing.Do(func() {
				go func() {
					defer close(closeDone)
					self.Load().Close()
				}()
				select {
				case <-sockClosed:
				case <-ctx.Done():
				}
			})
		}
	})
	self.Store(p.Client)
	return p, closeDone
}

// TestRecipientVanishesMidTransfer: one of two recipients closes its client
// after its first chunk. The other still gets the whole file; the sender's
// SendFile reports the vanished one as failed (ErrFileLost); the relay keeps
// what it owes the vanished member until the TTL, and a sweep after the TTL
// (fake clock) empties it.
func TestRecipientVanishesMidTransfer(t *testing.T) {
	ctx := testCtx(t)
	clock := newFakeClock()
	const ttl = time.Minute
	ts := newServer(t, serverOpts{MaxBytes: 64 << 20, MaxRoomBytes: 64 << 20, RelayTTL: ttl, Clock: clock})
	secret := newSecret(t)
	link := secret.Link(ts.URL)

	sender := dialPeer(ctx, t, link, "sender", func(o *client.Options) { o.OfflineGrace = 200 * time.Millisecond })
	r1 := dialPeer(ctx, t, link, "r1", nil)

	r2, closeDone := dialVanishing(ctx, t, link, "r2")
	meshOnline(ctx, t, sender, r1, r2)

	const size = 4<<20 + 777
	path, sum := makeFile(t, t.TempDir(), "video.mp4", size, "")
	rep, err := sender.SendFile(ctx, path)
	if !errors.Is(err, client.ErrFileLost) {
		t.Fatalf("SendFile error %v, want one wrapping client.ErrFileLost (report %+v)", err, rep)
	}
	if rep == nil {
		t.Fatal("SendFile returned no report")
	}
	if _, ok := rep.Failed[r2.ID()]; !ok || len(rep.Failed) != 1 {
		t.Errorf("report Failed %v, want only r2 %s", rep.Failed, r2.ID())
	}
	if !slices.Equal(rep.Delivered, []string{r1.ID()}) {
		t.Errorf("report Delivered %v, want only r1 %s", rep.Delivered, r1.ID())
	}

	f := nextFile(ctx, t, r1)
	if f.Err != nil || f.SHA256 != sum || f.Size != size {
		t.Fatalf("r1 received %+v, want the whole file (SHA-256 %s)", f, sum)
	}
	if got := fileSHA256(t, f.Path); got != sum {
		t.Fatalf("r1's file SHA-256 %s, want %s", got, sum)
	}
	select {
	case <-closeDone:
	case <-ctx.Done():
		t.Fatal("r2's Close did not return")
	}
	if got := visibleFiles(t, r2.dir); len(got) != 0 {
		t.Errorf("r2, gone after one chunk, has complete files %q", got)
	}

	// The relay still holds what it owes r2, and only that.
	room := crypto.DeriveRoom(secret).RoomIDString()
	st := ts.Store.Stats()
	if st.Bytes <= 0 || st.Items == 0 {
		t.Fatalf("store after r2 vanished: %+v, want the items owed to r2", st)
	}
	items, owedBytes := ts.Store.Owed(room, r2.ID())
	if items != st.Items || owedBytes != st.Bytes {
		t.Errorf("store holds %+v but r2 is owed %d items, %d bytes: want all of it owed to r2", st, items, owedBytes)
	}
	if items, _ := ts.Store.Owed(room, r1.ID()); items != 0 {
		t.Errorf("r1 is still owed %d items after receiving the file", items)
	}

	// Before the TTL a sweep keeps everything; after it, nothing is left.
	clock.Advance(ttl / 2)
	ts.Srv.Sweep()
	if got := ts.Store.Stats(); got != st {
		t.Errorf("store after a sweep within the TTL: %+v, want unchanged %+v", got, st)
	}
	clock.Advance(ttl)
	ts.Srv.Sweep()
	if got := ts.Store.Stats(); got.Bytes != 0 || got.Items != 0 {
		t.Errorf("store after the TTL and a sweep: %+v, want empty", got)
	}
	if got := ts.Srv.Stats(); got.Members != 2 || got.Online != 2 {
		t.Errorf("server after the sweep: %+v, want r2 forgotten (2 members, 2 online)", got)
	}
	waitPresence(ctx, t, sender, r2.ID(), protocol.EventLeave, 1)
}
