package e2e

import (
	"slices"
	"sync"
	"testing"

	"cloakroom/client"
)

// TestReceiveResumesAfterReconnect: the receiver's connection is cut in the
// middle of a file; its client reconnects by itself, the relay delivers
// again from the oldest unacked chunk, and the file completes intact, with
// the sender told it was delivered (DESIGN.md: transfers resume from the
// chunks each receiver already has).
func TestReceiveResumesAfterReconnect(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	proxy := newTCPProxy(t, ts.HTTP.Listener.Addr().String())
	sender := dialPeer(ctx, t, secret.Link(ts.URL), "sender", nil)
	var cutOnce sync.Once
	bob := dialPeer(ctx, t, secret.Link(proxy.URL()), "bob", func(o *client.Options) {
		record := o.OnProgress
		o.OnProgress = func(p client.Progress) {
			record(p)
			if !p.Sending && p.Bytes >= p.Total/4 {
				cutOnce.Do(func() { proxy.cut(false) })
			}
		}
	})
	meshOnline(ctx, t, sender, bob)

	const size = 4<<20 + 4321
	path, sum := makeFile(t, t.TempDir(), "resume.bin", size, "")
	res := sendAsync(ctx, sender, path)
	f := nextFile(ctx, t, bob)
	if f.Err != nil || f.SHA256 != sum || f.Size != size {
		t.Fatalf("bob received %+v, want the whole file (SHA-256 %s)", f, sum)
	}
	if got := fileSHA256(t, f.Path); got != sum {
		t.Fatalf("file on disk has SHA-256 %s, want %s", got, sum)
	}
	// The cut may land after bob already read the last frames (reception is
	// pipelined), so the file can complete before the reconnect: wait for it.
	waitState(ctx, t, bob, "restored", 1)
	r := awaitSend(ctx, t, res)
	if r.err != nil || !slices.Equal(r.rep.Delivered, []string{bob.ID()}) {
		t.Fatalf("SendFile: %v (report %+v), want delivered to bob", r.err, r.rep)
	}
	if st := ts.Store.Stats(); st.Bytes != 0 || st.Items != 0 {
		t.Errorf("store after delivery: %+v, want empty", st)
	}
	if got := visibleFiles(t, bob.dir); !slices.Equal(got, []string{"resume.bin"}) {
		t.Errorf("bob's directory holds %q, want only resume.bin", got)
	}
}

// TestRoomRestoredAfterServerRestart: the server goes away and a fresh one
// (no state) takes its address; both members' clients reconnect by
// themselves, the first one back registers the room again, and chat and
// files flow as before (DESIGN.md "Room restore after a server restart").
func TestRoomRestoredAfterServerRestart(t *testing.T) {
	ctx := testCtx(t)
	ts1 := newServer(t, serverOpts{})
	ts2 := newServer(t, serverOpts{})
	secret := newSecret(t)
	// The proxy is "the server's address": it forwards to ts1, then to ts2.
	proxy := newTCPProxy(t, ts1.HTTP.Listener.Addr().String())
	link := secret.Link(proxy.URL())
	alice := dialPeer(ctx, t, link, "alice", nil)
	bob := dialPeer(ctx, t, link, "bob", nil)
	meshOnline(ctx, t, alice, bob)
	if err := alice.SendChat(ctx, "before the restart"); err != nil {
		t.Fatal(err)
	}
	waitChat(ctx, t, bob, "before the restart", func(c client.Chat) bool { return c.Text == "before the restart" })

	proxy.setTarget(ts2.HTTP.Listener.Addr().String())
	if err := ts1.Srv.Close(); err != nil {
		t.Fatalf("closing the first server: %v", err)
	}
	waitState(ctx, t, alice, "restored", 1)
	waitState(ctx, t, bob, "restored", 1)
	if st := ts2.Srv.Stats(); st.Rooms != 1 || st.Members != 2 {
		t.Fatalf("new server after both rejoined: %+v, want 1 room with 2 members", st)
	}
	if err := alice.SendChat(ctx, "after the restart"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendChat(ctx, "bob after the restart"); err != nil {
		t.Fatal(err)
	}
	waitChat(ctx, t, bob, "after the restart", func(c client.Chat) bool { return c.Text == "after the restart" && c.From == alice.ID() })
	waitChat(ctx, t, alice, "bob after the restart", func(c client.Chat) bool { return c.Text == "bob after the restart" && c.From == bob.ID() })

	waitOnline(ctx, t, alice, bob.ID())
	path, sum := makeFile(t, t.TempDir(), "after-restart.bin", 300<<10, "")
	rep, err := alice.SendFile(ctx, path)
	if err != nil || !slices.Equal(rep.Delivered, []string{bob.ID()}) {
		t.Fatalf("SendFile after the restart: %v (report %+v)", err, rep)
	}
	if f := nextFile(ctx, t, bob); f.Err != nil || f.SHA256 != sum {
		t.Fatalf("bob received %+v, want after-restart.bin with SHA-256 %s", f, sum)
	}
	if n := count(bob.chats.snapshot(), func(c client.Chat) bool { return c.Text == "before the restart" }); n != 1 {
		t.Errorf("bob got the chat from before the restart %d times, want 1", n)
	}
}
