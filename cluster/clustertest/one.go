package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions is one server of a NATS cluster run on its own (natsd
// -cluster-port, one OS process per server).
type ServerOptions struct {
	Name        string // the server's name, nats-1…
	ClusterPort int    // where its routes listen
	Routes      string // every server's route URL, comma-separated
	Peers       int    // servers in the cluster, this one included
	StoreDir    string // JetStream's directory
}

// ErrRoutePortBusy: a server could not listen on its route port.
var ErrRoutePortBusy = errors.New("route port busy")

// readyWait bounds how long StartOne waits for its peers and a meta leader.
const readyWait = 60 * time.Second

// StartOne starts one NATS server with JetStream on 127.0.0.1 (random
// client and monitoring ports) and waits until it is routed to the
// other Peers-1 servers and JetStream has a meta leader. The caller shuts
// the server down (also after an error, when s is not nil).
func StartOne(ctx context.Context, o ServerOptions) (*server.Server, error) {
	opts := &server.Options{
		ServerName: o.Name, Host: "127.0.0.1", Port: server.RANDOM_PORT,
		HTTPHost: "127.0.0.1", HTTPPort: server.RANDOM_PORT,
		JetStream: true, StoreDir: o.StoreDir, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "cloakroom-test", Host: "127.0.0.1", Port: o.ClusterPort},
		Routes:  server.RoutesFromStr(o.Routes),
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server %s: %w", o.Name, err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		// nats-server keeps a listener's error to itself (NoLog): find out
		// whether the route port was taken, the one cause seen so far.
		if s.ClusterAddr() == nil {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.ClusterPort)))
			if err != nil {
				return s, fmt.Errorf("nats server %s not ready: %w: %w", o.Name, ErrRoutePortBusy, err)
			}
			l.Close()
		}
		return s, fmt.Errorf("nats server %s not ready", o.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	for !clustered(s, o.Peers) {
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("nats server %s: not routed to %d peers with a JetStream leader: %w", o.Name, o.Peers-1, ctx.Err())
		case <-time.After(50 * time.Millisecond): // nats-server offers no event to wait on
		}
	}
	return s, nil
}

// clustered reports whether s is routed to peers-1 other servers and
// knows JetStream's meta leader.
func clustered(s *server.Server, peers int) bool {
	rz, err := s.Routez(nil)
	if err != nil {
		return false
	}
	remotes := map[string]bool{} // a pair of servers may hold a pool of routes
	for _, r := range rz.Routes {
		remotes[r.RemoteName] = true
	}
	if len(remotes) < peers-1 {
		return false
	}
	js, err := s.Jsz(nil)
	return err == nil && js.Meta != nil && js.Meta.Leader != ""
}
