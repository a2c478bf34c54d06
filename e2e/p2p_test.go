package e2e

import (
	"sync"
	"testing"

	"cloakroom/client"
	"cloakroom/internal/protocol"
)

func withTransport(tr protocol.Transport) func(*client.Options) {
	return func(o *client.Options) { o.Transport = tr }
}

// TestP2PDirectTransfer: with --transport p2p the file goes over a direct
// data channel and arrives intact; the relay store never holds it.
func TestP2PDirectTransfer(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	sender := dialPeer(ctx, t, link, "sender", withTransport(protocol.TransportP2P))
	recv := dialPeer(ctx, t, link, "recv", withTransport(protocol.TransportP2P))
	meshOnline(ctx, t, sender, recv)
	path, sum := makeFile(t, t.TempDir(), "clip.mp4", 5<<20+321, "")
	rep, err := sender.SendFile(ctx, path)
	if err != nil {
		t.Fatalf("SendFile: %v (report %+v)", err, rep)
	}
	if got := rep.Paths[recv.ID()]; got != "direct" {
		t.Fatalf("path %q, want direct", got)
	}
	f := nextFile(ctx, t, recv)
	if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
		t.Fatalf("received %+v, want SHA-256 %s", f, sum)
	}
	if st := ts.Store.Stats(); st.Bytes != 0 || st.Items != 0 {
		t.Fatalf("relay store holds %+v after a direct transfer", st)
	}
}

// TestP2PTwoRecipients: two recipients, each over its own direct data
// channel, both get the file intact.
func TestP2PTwoRecipients(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	sender := dialPeer(ctx, t, link, "sender", withTransport(protocol.TransportP2P))
	r1 := dialPeer(ctx, t, link, "r1", withTransport(protocol.TransportP2P))
	r2 := dialPeer(ctx, t, link, "r2", withTransport(protocol.TransportP2P))
	meshOnline(ctx, t, sender, r1, r2)
	path, sum := makeFile(t, t.TempDir(), "clip.mp4", 8<<20+5, "")
	rep, err := sender.SendFile(ctx, path)
	if err != nil {
		t.Fatalf("SendFile: %v (report %+v)", err, rep)
	}
	for _, r := range []*peer{r1, r2} {
		if got := rep.Paths[r.ID()]; got != "direct" {
			t.Fatalf("%s: path %q, want direct", r.name, got)
		}
		f := nextFile(ctx, t, r)
		if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
			t.Fatalf("%s received %+v, want SHA-256 %s", r.name, f, sum)
		}
	}
}

// TestP2PBrokenMidFileContinuesOnRelay: with transport auto, the direct
// session breaks when the receiver holds a quarter of the file; the sender
// announces the same content on the relay, the receiver adopts its partial
// file and says what it holds, and only the rest crosses the relay.
func TestP2PBrokenMidFileContinuesOnRelay(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	link := newSecret(t).Link(ts.URL)
	sender := dialPeer(ctx, t, link, "sender", withTransport(protocol.TransportAuto))
	var recv *peer
	var once sync.Once
	recv = dialPeer(ctx, t, link, "recv", func(o *client.Options) {
		o.Transport = protocol.TransportAuto
		record := o.OnProgress
		o.OnProgress = func(p client.Progress) {
			record(p)
			if p.Path == "direct" && p.Bytes >= p.Total/4 && p.Bytes < p.Total {
				once.Do(func() { go recv.ResetPeers() })
			}
		}
	})
	meshOnline(ctx, t, sender, recv)
	const size = 24<<20 + 77
	path, sum := makeFile(t, t.TempDir(), "movie.mkv", size, "")
	rep, err := sender.SendFile(ctx, path)
	if err != nil {
		t.Fatalf("SendFile: %v (report %+v)", err, rep)
	}
	if got := rep.Paths[recv.ID()]; got != "relay" {
		t.Fatalf("path %q, want relay after the direct session broke (report %+v)", got, rep)
	}
	f := nextFile(ctx, t, recv)
	if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
		t.Fatalf("received %+v, want SHA-256 %s", f, sum)
	}
	if f.Resumed < size/4 {
		t.Fatalf("the relay round started from %d bytes held, want at least a quarter of %d", f.Resumed, size)
	}
	if rep.Uploaded >= size {
		t.Fatalf("relay upload %d bytes of a %d-byte file: the chunks held were sent again", rep.Uploaded, size)
	}
	t.Logf("held %d of %d bytes when the session broke; relay uploaded %d", f.Resumed, size, rep.Uploaded)
}

// TestP2PStripes: a large file is fetched over several links with its
// sender at once (Options.Links), each its own SCTP association, and
// arrives intact; with Links 1 it takes one. (The rate gate is lowered:
// under -race a link is slow.)
func TestP2PStripes(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	path, sum := makeFile(t, t.TempDir(), "big.bin", 24<<20+12345, "")
	for _, tc := range []struct {
		links, want int
		rate        float64
	}{{1, 1, 1}, {3, 3, 1}, {3, 1, 1e12}} { // the last: the path is never fast enough
		links := tc.links
		link := newSecret(t).Link(ts.URL)
		sender := dialPeer(ctx, t, link, "sender", withTransport(protocol.TransportP2P))
		recv := dialPeer(ctx, t, link, "recv", func(o *client.Options) {
			o.Transport = protocol.TransportP2P
			o.Links = links
			o.StripeMin = 8 << 20
			o.StripeRate = tc.rate
		})
		meshOnline(ctx, t, sender, recv)
		rep, err := sender.SendFile(ctx, path)
		if err != nil {
			t.Fatalf("links %d: SendFile: %v (report %+v)", links, err, rep)
		}
		f := nextFile(ctx, t, recv)
		if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
			t.Fatalf("links %d: received %+v, want SHA-256 %s", links, f, sum)
		}
		if f.Links != tc.want {
			t.Fatalf("links %d, rate gate %g B/s: chunks came over %d sessions, want %d", links, tc.rate, f.Links, tc.want)
		}
		t.Logf("links %d, rate gate %g B/s: %d sessions delivered", links, tc.rate, f.Links)
	}
}
