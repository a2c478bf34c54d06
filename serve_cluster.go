package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	flag "github.com/spf13/pflag"

	"cloakroom/cluster"
	"cloakroom/signaling"
)

// addClusterFlags adds --cluster and --cluster-name (docs/SCALING.md).
func addClusterFlags(fs *flag.FlagSet, cfg *serveConfig) {
	fs.StringVar(&cfg.Cluster, "cluster", "", "share rooms with other nodes through NATS with JetStream: nats://HOST:PORT[,nats://HOST:PORT...] (empty: a single node)")
	fs.StringVar(&cfg.ClusterName, "cluster-name", "node", "this node's name in the cluster (letters, digits, - and _; a random suffix is added)")
}

// clusterConfig is the cluster.Config the flags ask for (URLs nil without
// --cluster).
func (cfg serveConfig) clusterConfig(log *slog.Logger) cluster.Config {
	var urls []string
	for _, u := range strings.Split(cfg.Cluster, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	relay := cfg.Sig.Relay
	_ = relay.Fill()
	return cluster.Config{URLs: urls, Name: cfg.ClusterName, TTL: relay.TTL, MaxBytes: relay.MaxBytes, Logger: log}
}

// checkClusterFlags validates --cluster and --cluster-name when given.
func checkClusterFlags(cfg serveConfig) error {
	if cfg.Cluster == "" {
		return nil
	}
	if err := cfg.clusterConfig(nil).Validate(); err != nil {
		return usagef("serve: --cluster: %w", err)
	}
	return nil
}

// clusterNode is the node of --cluster; nil (every method a no-op)
// without it.
type clusterNode struct{ *cluster.Node }

// connectCluster joins the NATS cluster of --cluster (nil without it).
func connectCluster(ctx context.Context, cfg serveConfig, log *slog.Logger) (*clusterNode, error) {
	if cfg.Cluster == "" {
		return nil, nil
	}
	node, err := cluster.Connect(ctx, cfg.clusterConfig(log))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	log.Info("cluster: joined", "node", node.Node())
	return &clusterNode{node}, nil
}

// bus is the node as signaling's Bus (a nil interface without a node).
func (n *clusterNode) bus() signaling.Bus {
	if n == nil {
		return nil
	}
	return n.Node
}

func (n *clusterNode) close() {
	if n != nil {
		n.Close()
	}
}

// runCluster hands the other nodes' events to srv until ctx ends.
func runCluster(ctx context.Context, wg *sync.WaitGroup, node *clusterNode, srv *signaling.Server, log *slog.Logger) {
	if node == nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := node.Run(ctx, srv); err != nil && ctx.Err() == nil {
			log.Error("cluster: stopped", "err", err)
		}
	}()
}
