package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cloakroom/client"
	"cloakroom/cluster/clustertest"
	"cloakroom/internal/crypto"
)

// clusterNodes is how many cloakroom nodes (and NATS servers) bench
// cluster runs.
const clusterNodes = 3

// RunCluster (issue 17): the cluster's capacity beside a single node's, in
// the same run, all on 127.0.0.1: a 3-server NATS cluster with JetStream
// in this process and `cloakroom serve` child processes — one alone, then
// three with --cluster. Conns idle connections per node; Rooms × Members
// at MsgRate with the members of each room spread over the nodes
// (latency of every delivery and of those between nodes); a Size file
// through the relay between two nodes and within one.
func RunCluster(ctx context.Context, cfg Config) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	limit := raiseFileLimit()
	dir, err := os.MkdirTemp(cfg.Dir, "bench-cluster-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	natsURLs, stopNATS, err := benchNATS(cfg, dir)
	if err != nil {
		return err
	}
	defer stopNATS()
	out := cfg.Out
	where := fmt.Sprintf("%d NATS servers (JetStream) in this process", clusterNodes)
	if len(cfg.NATS) > 0 {
		where = fmt.Sprintf("the NATS cluster at %s", strings.Join(cfg.NATS, ","))
	}
	fmt.Fprintf(out, "bench cluster: %s, cloakroom serve children; open files limit %d; load %s\n", where, limit, loadAvg())
	flags := []string{"--max-conns", strconv.Itoa(cfg.Conns + 1000), "--max-conns-per-ip", "-1", "--max-rooms-per-ip", "-1", "--join-rate", "-1",
		"--msg-rate", "-1", "--max-rooms", strconv.Itoa(cfg.Conns + 1000)}
	single, err := startNodes(ctx, cfg.Serve, 1, "", flags)
	if err != nil {
		return err
	}
	singleRes, err := measureNodes(ctx, cfg, single, dir)
	stopNodes(single)
	if err != nil {
		return err
	}
	nodes, err := startNodes(ctx, cfg.Serve, clusterNodes, strings.Join(natsURLs, ","), flags)
	if err != nil {
		return err
	}
	defer stopNodes(nodes)
	clusterRes, err := measureNodes(ctx, cfg, nodes, dir)
	if err != nil {
		return err
	}
	if clusterRes.rawStream, err = rawStream(ctx, natsURLs, cfg.Size); err != nil {
		return err
	}
	printCluster(out, cfg, singleRes, clusterRes)
	return nil
}

// benchNATS returns the NATS cluster to use: cfg.NATS, or 3 servers
// started in this process (stopped by the returned function).
func benchNATS(cfg Config, dir string) ([]string, func(), error) {
	if len(cfg.NATS) > 0 {
		return cfg.NATS, func() {}, nil
	}
	next := 0
	nats, err := clustertest.StartServers(clusterNodes, func() string {
		next++
		d := filepath.Join(dir, "nats"+strconv.Itoa(next))
		_ = os.MkdirAll(d, 0o700)
		return d
	})
	if err != nil {
		if nats != nil {
			nats.Shutdown()
		}
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	return nats.URLs, nats.Shutdown, nil
}

// startNodes starts n serve children, with --cluster natsURL when n > 1.
func startNodes(ctx context.Context, serve []string, n int, natsURL string, flags []string) ([]*serverChild, error) {
	var out []*serverChild
	for i := range n {
		extra := flags
		if natsURL != "" {
			extra = append(append([]string{}, flags...), "--cluster", natsURL, "--cluster-name", fmt.Sprintf("node%d", i+1))
		}
		s, err := startServerChild(ctx, serve, extra...)
		if err != nil {
			stopNodes(out)
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func stopNodes(nodes []*serverChild) {
	for _, s := range nodes {
		s.stop()
	}
}

// nodesResult is one set of nodes measured.
type nodesResult struct {
	conns            int
	rssBase, rssIdle []int64 // per node
	fan              fanoutResult
	relayAcross      time.Duration // sender on the first node, receiver on the last
	relayWithin      time.Duration // both on the first node
	rawStream        float64       // baseline: bytes/s through JetStream alone (3 nodes)
}

func measureNodes(ctx context.Context, cfg Config, nodes []*serverChild, dir string) (nodesResult, error) {
	urls, pids := make([]string, len(nodes)), make([]int, len(nodes))
	for i, s := range nodes {
		urls[i], pids[i] = s.url, s.cmd.Process.Pid
	}
	r := nodesResult{conns: cfg.Conns * len(nodes)}
	var err error
	r.rssBase, r.rssIdle, err = idleNodes(ctx, urls, pids, r.conns, cfg.Members)
	if err != nil {
		return r, err
	}
	if r.fan, err = measureFanout(ctx, cfg, urls, pids); err != nil {
		return r, err
	}
	src := filepath.Join(dir, "relay.bin")
	if err := writeRandomFile(src, cfg.Size); err != nil {
		return r, err
	}
	defer os.Remove(src)
	if r.relayAcross, err = relayBetween(ctx, src, urls[0], urls[len(urls)-1], dir); err != nil {
		return r, err
	}
	r.relayWithin, err = relayBetween(ctx, src, urls[0], urls[0], dir)
	return r, err
}

// idleNodes holds conns idle members spread over the nodes for a few
// seconds and returns each node's RSS before and with them.
func idleNodes(ctx context.Context, urls []string, pids []int, conns, members int) (base, idle []int64, err error) {
	for _, pid := range pids {
		base = append(base, procStatus(pid, "VmRSS"))
	}
	clients, err := benchDialNodes(ctx, urls, conns, members)
	if err != nil {
		return nil, nil, err
	}
	wg := startReaders(clients)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	for _, pid := range pids {
		idle = append(idle, procStatus(pid, "VmRSS"))
	}
	benchCloseAll(clients)
	wg.Wait()
	return base, idle, ctx.Err()
}

// relayBetween times src through the relay from a sender on from to a
// receiver on to (the same room, reached through two nodes).
func relayBetween(ctx context.Context, src, from, to, dir string) (time.Duration, error) {
	outDir, err := os.MkdirTemp(dir, "received-")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(outDir)
	secret, err := crypto.NewSecret()
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	recv, err := client.Dial(ctx, secret.Link(to), client.Options{Dir: outDir})
	if err != nil {
		return 0, fmt.Errorf("bench: receiver: %w", err)
	}
	defer recv.Close()
	return timeSend(ctx, secret.Link(from), recv, src)
}

// printCluster writes the single node's figures beside the cluster's.
func printCluster(out io.Writer, cfg Config, single, cl nodesResult) {
	kib := func(r nodesResult) float64 {
		var d int64
		for i := range r.rssBase {
			d += r.rssIdle[i] - r.rssBase[i]
		}
		return float64(d) / 1024 / float64(r.conns)
	}
	mibs := func(v []int64) string {
		var s []string
		for _, x := range v {
			s = append(s, fmt.Sprintf("%.0f", mib(x)))
		}
		return strings.Join(s, "/")
	}
	fmt.Fprintf(out, "%-44s %-28s %s\n", "", "single node", fmt.Sprintf("%d nodes", clusterNodes))
	row := func(name, a, b string) { fmt.Fprintf(out, "%-44s %-28s %s\n", name, a, b) }
	row("idle connections (total)", strconv.Itoa(single.conns), strconv.Itoa(cl.conns))
	row("server RSS with them, MiB per node", mibs(single.rssIdle), mibs(cl.rssIdle))
	row("KiB per idle connection", fmt.Sprintf("%.1f", kib(single)), fmt.Sprintf("%.1f", kib(cl)))
	fan := func(r fanoutResult, all bool) string {
		d := r.cross
		if all {
			d = r.got
		}
		if len(d) == 0 {
			return "-"
		}
		return fmt.Sprintf("p50 %s p99 %s (%d)", pct(d, 50), pct(d, 99), len(d))
	}
	row(fmt.Sprintf("fanout %dx%d at %g msg/s: all deliveries", cfg.Rooms, cfg.Members, cfg.MsgRate), fan(single.fan, true), fan(cl.fan, true))
	row("  deliveries between nodes", fan(single.fan, false), fan(cl.fan, false))
	row("  messages sent / delivered twice", fmt.Sprintf("%d / %d", single.fan.sent, single.fan.dups), fmt.Sprintf("%d / %d", cl.fan.sent, cl.fan.dups))
	row("  server CPU (cores, all nodes)", fmt.Sprintf("%.2f", single.fan.serverCPU), fmt.Sprintf("%.2f", cl.fan.serverCPU))
	self := "  this process (clients; NATS too for 3 nodes)"
	if len(cfg.NATS) > 0 {
		self = "  this process (clients)"
	}
	row(self, fmt.Sprintf("%.2f", single.fan.selfCPU), fmt.Sprintf("%.2f", cl.fan.selfCPU))
	mbs := func(d time.Duration) string { return fmt.Sprintf("%.1f MB/s", rate(cfg.Size, d)) }
	row(fmt.Sprintf("relay %d MiB, sender and receiver on one node", cfg.Size>>20), mbs(single.relayWithin), mbs(cl.relayWithin))
	row("relay, sender and receiver on two nodes", "-", mbs(cl.relayAcross))
	row("  baseline: JetStream R3 alone, 3 consumers", "-", fmt.Sprintf("%.1f MB/s", cl.rawStream/1e6))
	row("  relay across nodes / JetStream alone", "-", fmt.Sprintf("%.2f", rate(cfg.Size, cl.relayAcross)*1e6/cl.rawStream))
	fmt.Fprintf(out, "load at the end: %s\n", loadAvg())
}
