// Package clustertest starts a real NATS cluster with JetStream in the test
// process (nats-server/v2 on 127.0.0.1, random ports, JetStream's store
// directory in a temporary directory; cloakroom's streams use memory
// storage), for the tests of package cluster and of the serve command.
package clustertest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a running NATS cluster.
type Cluster struct {
	Servers []*server.Server
	URLs    []string // client URLs, nats://127.0.0.1:PORT, one per server
}

// URL is every server's client URL, comma-separated (--cluster's form).
func (c *Cluster) URL() string {
	s := ""
	for i, u := range c.URLs {
		if i > 0 {
			s += ","
		}
		s += u
	}
	return s
}

// Start starts n NATS servers routed into one cluster with JetStream and
// waits until JetStream has a meta leader. They shut down when t ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	routes := make([]int, n)
	for i := range routes {
		routes[i] = freePort(t)
	}
	var routeURLs string
	for i, p := range routes {
		if i > 0 {
			routeURLs += ","
		}
		routeURLs += fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "cloakroom-test", Host: "127.0.0.1", Port: routes[i]},
			Routes:  server.RoutesFromStr(routeURLs),
		}
		if n == 1 {
			opts.Cluster, opts.Routes = server.ClusterOpts{}, nil
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats server %d: %v", i+1, err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats server %d not ready", i+1)
		}
		c.Servers = append(c.Servers, s)
		c.URLs = append(c.URLs, s.ClientURL())
	}
	c.waitLeader(t)
	return c
}

// waitLeader waits (at most 30 s) until the servers agree on a JetStream
// meta leader: before that, making a stream fails.
func (c *Cluster) waitLeader(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() {
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // nats-server offers no leader event to wait on
	}
	t.Fatal("NATS cluster: no JetStream leader in 30 s")
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
