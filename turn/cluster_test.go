package turn

import (
	"net"
	"testing"
	"time"
)

// TestCredentialsAcrossNodes: cluster nodes run a TURN server each with
// the shared --turn-secret (docs/SCALING.md); credentials one node minted
// for a member allocate on another node's TURN server, and two members
// whose allocations sit on different nodes relay to each other. A revoke
// on one node (the member left: every node hears it and revokes) refuses
// the credentials there too.
func TestCredentialsAcrossNodes(t *testing.T) {
	t.Parallel()
	node1, _ := startServer(t, Config{AllowLoopback: true})
	node2, _ := startServer(t, Config{AllowLoopback: true})
	u, p := node1.Credentials("alice.room", time.Hour)
	ca := dialTURN(t, node2, "udp", u, p)
	ra, err := ca.Allocate()
	if err != nil {
		t.Fatalf("allocate on node 2 with node 1's credentials: %v", err)
	}
	t.Cleanup(func() { _ = ra.Close() })
	cb, rb := allocate(t, node1, "tcp", "bob.room")
	for _, perm := range []struct {
		c interface{ CreatePermission(...net.Addr) error }
		a net.Addr
	}{{ca, rb.LocalAddr()}, {cb, ra.LocalAddr()}} {
		if err := perm.c.CreatePermission(perm.a); err != nil {
			t.Fatal(err)
		}
	}
	exchange(t, ra, rb, []byte("from node 2"))
	exchange(t, rb, ra, []byte("from node 1"))

	node2.Revoke("alice.room", time.Now().Add(time.Hour))
	if _, err := dialTURN(t, node2, "udp", u, p).Allocate(); errorCode(err) != 401 {
		t.Fatalf("allocate on node 2 after revoke: %v, want 401", err)
	}
}
