package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"cloakroom/client"
	"cloakroom/cluster"
	"cloakroom/cluster/clustertest"
	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
	"cloakroom/signaling"
)

// clusterNode is one cloakroom node of a test cluster: a signaling server
// whose Bus is a cluster.Node on the test's NATS cluster.
type clusterNode struct {
	*testServer
	bus  *cluster.Node
	stop context.CancelFunc
	done chan struct{}
}

// newClusterNodes starts n cloakroom nodes on the NATS cluster nc, the
// i-th connected to NATS server i (mod the servers).
func newClusterNodes(t *testing.T, nc *clustertest.Cluster, n int) []*clusterNode {
	t.Helper()
	var out []*clusterNode
	for i := range n {
		urls := append([]string{nc.URLs[i%len(nc.URLs)]}, nc.URLs...)
		bus, err := cluster.Connect(context.Background(), cluster.Config{
			URLs: urls, Name: fmt.Sprintf("node%d", i+1), TTL: store.DefaultTTL, MaxBytes: store.DefaultMaxBytes,
		})
		if err != nil {
			t.Fatalf("node %d: cluster.Connect: %v", i+1, err)
		}
		srv, err := signaling.New(signaling.Config{Bus: bus})
		if err != nil {
			t.Fatalf("signaling.New: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cn := &clusterNode{bus: bus, stop: cancel, done: make(chan struct{})}
		go func() {
			defer close(cn.done)
			if err := bus.Run(ctx, srv); err != nil && ctx.Err() == nil {
				t.Errorf("node %d: Run: %v", i+1, err)
			}
		}()
		hs := httptest.NewServer(srv.Handler())
		cn.testServer = &testServer{Store: relayView{srv}, Srv: srv, HTTP: hs, URL: hs.URL}
		t.Cleanup(cn.close)
		out = append(out, cn)
	}
	return out
}

// close drains the node: clients get going_away, the others hear it go.
func (cn *clusterNode) close() {
	_ = cn.Srv.Close()
	cn.HTTP.CloseClientConnections()
	cn.HTTP.Close()
	cn.stop()
	<-cn.done
	cn.bus.Close()
}

// TestClusterRoomAcrossNodes: three members of one room, each on another
// node of a 3-node cluster (3 NATS servers with JetStream): they verify
// each other's presence end to end, chat, and move a file over the relay
// and over a direct data channel.
func TestClusterRoomAcrossNodes(t *testing.T) {
	ctx := testCtx(t)
	nodes := newClusterNodes(t, clustertest.Start(t, 3), 3)
	secret := newSecret(t)
	var peers []*peer
	for i, name := range []string{"alice", "bob", "carol"} {
		peers = append(peers, dialPeer(ctx, t, secret.Link(nodes[i].URL), name, nil))
	}
	meshOnline(ctx, t, peers...)
	meshVerified(ctx, t, peers...)

	for _, p := range peers {
		if err := p.SendChat(ctx, "hello from "+p.name); err != nil {
			t.Fatalf("%s: SendChat: %v", p.name, err)
		}
	}
	for _, p := range peers {
		for _, q := range peers {
			if q != p {
				waitChat(ctx, t, p, "chat from "+q.name, func(c client.Chat) bool { return c.Text == "hello from "+q.name })
			}
		}
	}

	path, sum := makeFile(t, t.TempDir(), "relay.bin", 3<<20+17, "")
	rep, err := peers[0].SendFile(ctx, path)
	if err != nil {
		t.Fatalf("relay SendFile: %v (report %+v)", err, rep)
	}
	for _, p := range peers[1:] {
		if f := nextFile(ctx, t, p); f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
			t.Fatalf("%s received %+v, want SHA-256 %s", p.name, f, sum)
		}
	}
}

// TestClusterDirectAcrossNodes: a direct data channel between members on
// two nodes (the offer, answer and candidates cross NATS).
func TestClusterDirectAcrossNodes(t *testing.T) {
	ctx := testCtx(t)
	nodes := newClusterNodes(t, clustertest.Start(t, 3), 2)
	secret := newSecret(t)
	sender := dialPeer(ctx, t, secret.Link(nodes[0].URL), "sender", withTransport(protocol.TransportP2P))
	recv := dialPeer(ctx, t, secret.Link(nodes[1].URL), "recv", withTransport(protocol.TransportP2P))
	meshOnline(ctx, t, sender, recv)
	path, sum := makeFile(t, t.TempDir(), "direct.bin", 5<<20+321, "")
	rep, err := sender.SendFile(ctx, path)
	if err != nil {
		t.Fatalf("SendFile: %v (report %+v)", err, rep)
	}
	if got := rep.Paths[recv.ID()]; got != "direct" {
		t.Fatalf("path %q, want direct", got)
	}
	if f := nextFile(ctx, t, recv); f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
		t.Fatalf("received %+v, want SHA-256 %s", f, sum)
	}
}

// TestClusterDrain: two nodes behind a load balancer; the node of one
// member drains (its clients get going_away): the member reconnects
// through the balancer to the other node, the room carries on (chat both
// ways), and the member was away for one reconnect.
func TestClusterDrain(t *testing.T) {
	ctx := testCtx(t)
	nodes := newClusterNodes(t, clustertest.Start(t, 3), 2)
	lb := clustertest.NewBalancer(t, strings.TrimPrefix(nodes[0].URL, "http://"), strings.TrimPrefix(nodes[1].URL, "http://"))
	link := newSecret(t).Link("http://" + lb.Addr)
	alice := dialPeer(ctx, t, link, "alice", nil)
	waitState(ctx, t, alice, string(protocol.StateConnected), 1)
	drained := slices.Index(lb.Active(), 1)
	bob := dialPeer(ctx, t, link, "bob", nil)
	meshVerified(ctx, t, alice, bob)
	if got := lb.Active(); got[0] != 1 || got[1] != 1 {
		t.Fatalf("connections per node %v, want one each", got)
	}
	nodes[drained].close()
	waitState(ctx, t, alice, string(protocol.StateRestored), 1)
	waitOnline(ctx, t, bob, alice.ID())
	if err := alice.SendChat(ctx, "after the drain"); err != nil {
		t.Fatalf("SendChat: %v", err)
	}
	waitChat(ctx, t, bob, "alice's chat", func(c client.Chat) bool { return c.Text == "after the drain" })
	if err := bob.SendChat(ctx, "still here"); err != nil {
		t.Fatalf("SendChat: %v", err)
	}
	waitChat(ctx, t, alice, "bob's chat", func(c client.Chat) bool { return c.Text == "still here" })
	if n := count(alice.states.snapshot(), func(s string) bool { return s == string(protocol.StateReconnecting) }); n != 1 {
		t.Errorf("alice reconnected %d times, want 1", n)
	}
}
