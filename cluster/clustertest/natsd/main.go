// Command natsd runs a NATS cluster with JetStream on 127.0.0.1 for the
// browser tests and benchmarks (webtest/cluster.mjs): it prints
// "nats: URL,URL,..." and serves until stdin closes or it is signalled.
//
//	go run ./cluster/clustertest/natsd [-n 3]
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
	n := flag.Int("n", 3, "servers in the cluster")
	flag.Parse()
	dir, err := os.MkdirTemp("", "natsd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	next := 0
	c, err := clustertest.StartServers(*n, func() string {
		next++
		d := fmt.Sprintf("%s/%d", dir, next)
		_ = os.MkdirAll(d, 0o700)
		return d
	})
	if c != nil {
		defer c.Shutdown()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		return
	}
	fmt.Println("nats:", c.URL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
}
