// Package clustertest starts a real NATS cluster with JetStream in the test
// process (nats-server/v2 on 127.0.0.1, random ports, JetStream's store
// directory in a temporary directory; cloakroom's streams use memory
// storage), for the tests of package cluster and of the serve command.
package clustertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"cloakroom/internal/testport"
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
	c, err := StartServers(n, t.TempDir)
	if c != nil {
		t.Cleanup(c.Shutdown)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartServers is Start for a program (webtest's NATS cluster, the
// benchmarks): storeDir gives each server its JetStream directory. The
// caller shuts the cluster down (also after an error, when c is not nil).
func StartServers(n int, storeDir func() string) (*Cluster, error) {
	routes := make([]int, n)
	for i := range routes {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		routes[i] = p
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
			JetStream: true, StoreDir: storeDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "cloakroom-test", Host: "127.0.0.1", Port: routes[i]},
			Routes:  server.RoutesFromStr(routeURLs),
		}
		if n == 1 {
			opts.Cluster, opts.Routes = server.ClusterOpts{}, nil
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return c, fmt.Errorf("nats server %d: %w", i+1, err)
		}
		s.Start()
		c.Servers = append(c.Servers, s)
		if !s.ReadyForConnections(10 * time.Second) {
			return c, fmt.Errorf("nats server %d not ready", i+1)
		}
		c.URLs = append(c.URLs, s.ClientURL())
	}
	return c, c.waitLeader()
}

// Shutdown stops every server.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
}

// waitLeader waits (at most 30 s) until the servers agree on a JetStream
// meta leader: before that, making a stream fails.
func (c *Cluster) waitLeader() error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond) // nats-server offers no leader event to wait on
	}
	return fmt.Errorf("NATS cluster: no JetStream leader in 30 s")
}

// freePort is a route port: below the ephemeral range, so that no
// outgoing connection takes it before the server binds it.
func freePort() (int, error) { return testport.Free("127.0.0.1", false) }
