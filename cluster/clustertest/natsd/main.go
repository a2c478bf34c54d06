// Command natsd runs NATS with JetStream on 127.0.0.1 for the browser
// tests, the benchmarks and the failover tests.
//
// Without -cluster-port it runs a whole cluster of -n servers in this one
// process (webtest/cluster.mjs): it prints "nats: URL,URL,..." once
// JetStream has a meta leader.
//
// With -cluster-port it runs ONE server of a cluster (clustertest's
// StartProcesses runs each server as its own process, so that a test can
// SIGKILL one): routed to -routes, it prints
// "nats: URL monitor: URL" once it is routed to -peers-1 other servers and
// JetStream has a meta leader.
//
// Either way it serves until stdin closes or it is signalled.
//
//	go run ./cluster/clustertest/natsd [-n 3]
//	natsd -name nats-1 -cluster-port 6222 -routes nats-route://127.0.0.1:6223,... -peers 3 -store DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"cloakroom/cluster/clustertest"
)

func main() {
	n := flag.Int("n", 3, "servers in the cluster (one process)")
	var one clustertest.ServerOptions
	flag.StringVar(&one.Name, "name", "nats-1", "with -cluster-port: this server's name")
	flag.IntVar(&one.ClusterPort, "cluster-port", 0, "run ONE server whose routes listen on this port")
	flag.StringVar(&one.Routes, "routes", "", "with -cluster-port: every server's route URL, comma-separated")
	flag.IntVar(&one.Peers, "peers", 1, "with -cluster-port: servers in the cluster, this one included")
	flag.StringVar(&one.StoreDir, "store", "", "with -cluster-port: JetStream's directory (default: a temporary one)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	run := runCluster
	if one.ClusterPort != 0 {
		run = func(ctx context.Context, _ int) error { return runOne(ctx, one) }
	}
	if err := run(ctx, *n); err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
}

// runCluster runs n servers in this process until ctx ends.
func runCluster(ctx context.Context, n int) error {
	dir, err := os.MkdirTemp("", "natsd-")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer os.RemoveAll(dir)
	next := 0
	c, err := clustertest.StartServers(n, func() string {
		next++
		d := fmt.Sprintf("%s/%d", dir, next)
		_ = os.MkdirAll(d, 0o700)
		return d
	})
	if c != nil {
		defer c.Shutdown()
	}
	if err != nil {
		return err
	}
	fmt.Println("nats:", c.URL())
	<-ctx.Done()
	return nil
}

// runOne runs one server of a cluster until ctx ends.
func runOne(ctx context.Context, o clustertest.ServerOptions) error {
	if o.StoreDir == "" {
		dir, err := os.MkdirTemp("", "natsd-")
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		defer os.RemoveAll(dir)
		o.StoreDir = dir
	}
	s, err := clustertest.StartOne(ctx, o)
	if s != nil {
		defer s.Shutdown()
	}
	if err != nil {
		return err
	}
	fmt.Printf("nats: %s monitor: http://%s\n", s.ClientURL(), s.MonitorAddr())
	<-ctx.Done()
	return nil
}
