package main

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloakroom/cluster/clustertest"
)

// startClusterNodes starts n `cloakroom serve --cluster` processes on a
// real 3-server NATS cluster with JetStream run in this test process.
func startClusterNodes(t *testing.T, n int) ([]*proc, []string) {
	t.Helper()
	nc := clustertest.Start(t, 3)
	var procs []*proc
	var urls []string
	for i := range n {
		// Each node prefers another NATS server; all are listed.
		list := append([]string{nc.URLs[i%len(nc.URLs)]}, nc.URLs...)
		p, url := startServer(t, "--cluster", strings.Join(list, ","), "--cluster-name", fmt.Sprintf("node%d", i+1),
			"--metrics-addr", "", "--relay-max-bytes", "64MiB")
		procs, urls = append(procs, p), append(urls, url)
	}
	return procs, urls
}

// TestCLICluster: three cloakroom processes share a room through NATS; a
// sender on node 1 moves a file to receivers on nodes 2 and 3 over the
// relay and over direct data channels (SHA-256 match), chat crosses
// nodes (in a room of its own), and after a drain (SIGTERM) every node's
// relay store is empty: acks made on one node freed the copies on all.
// CLOAKROOM_E2E_SIZE sets the file size (default 64 MiB; the acceptance
// run uses 256MiB).
func TestCLICluster(t *testing.T) {
	nodes, urls := startClusterNodes(t, 3)
	link, _ := newRoom(t, urls[0])
	on := func(i int) string { return urls[i] + strings.TrimPrefix(link, urls[0]) }
	size := transferSize(t)
	src, want := randomFile(t, t.TempDir(), size)
	for _, transport := range []string{"relay", "p2p"} {
		t.Run(transport, func(t *testing.T) {
			out2, out3 := t.TempDir(), t.TempDir()
			r2 := start(t, "recv", "--transport", transport, "-o", out2, "--count", "1", on(1))
			r3 := start(t, "recv", "--transport", transport, "-o", out3, "--count", "1", on(2))
			inRoom := regexp.MustCompile(`in the room`)
			r2.waitLine(t, inRoom, 20*time.Second)
			r3.waitLine(t, inRoom, 20*time.Second)
			began := time.Now()
			snd := start(t, "send", "--transport", transport, on(0), src)
			if err := snd.wait(t, 60*time.Second+time.Duration(size>>20)*time.Second/2); err != nil {
				t.Fatalf("send: %v", err)
			}
			for i, r := range []*proc{r2, r3} {
				if err := r.wait(t, 30*time.Second); err != nil {
					t.Fatalf("recv on node %d: %v", i+2, err)
				}
			}
			for i, dir := range []string{out2, out3} {
				if sha := fileSHA(t, filepath.Join(dir, "random.bin")); sha != want {
					t.Fatalf("recv on node %d: SHA-256 %s, want %s", i+2, sha, want)
				}
			}
			t.Logf("%d MiB via %s from node 1 to nodes 2 and 3 in %s", size>>20, transport, time.Since(began).Round(time.Millisecond))
		})
	}
	t.Run("chat", func(t *testing.T) {
		// A room of its own: chat is owed to every known member, and the
		// receivers above are offline members of the first room.
		link, _ := newRoom(t, urls[0])
		on := func(i int) string { return urls[i] + strings.TrimPrefix(link, urls[0]) }
		a, aIn := startIn(t, true, "chat", on(0))
		a.waitLine(t, regexp.MustCompile(`\* connected`), 20*time.Second)
		b, bIn := startIn(t, true, "chat", on(2))
		b.waitLine(t, regexp.MustCompile(`\* connected`), 20*time.Second)
		aID := b.waitLine(t, regexp.MustCompile(`^stderr: \* ([0-9a-f]{8}) online$`), 20*time.Second)[1]
		fmt.Fprintln(aIn, "hello from node 1")
		b.waitLine(t, regexp.MustCompile(`^`+aID+`: hello from node 1$`), 20*time.Second)
		fmt.Fprintln(bIn, "hi from node 3")
		a.waitLine(t, regexp.MustCompile(`^[0-9a-f]{8}: hi from node 3$`), 20*time.Second)
		aIn.Close()
		bIn.Close()
		_ = a.wait(t, 10*time.Second)
		_ = b.wait(t, 10*time.Second)
	})
	for i, n := range nodes {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		if err := n.wait(t, 15*time.Second); err != nil {
			t.Fatalf("node %d exit: %v", i+1, err)
		}
		if m := n.waitLine(t, relayExitRe, time.Second); m[1] != "0" || m[2] != "0" {
			t.Errorf("node %d: relay store holds %s bytes in %s items after the transfers, want 0", i+1, m[1], m[2])
		}
	}
}

// failoverCluster is three cloakroom nodes behind a load balancer, on a
// 3-server NATS cluster whose servers are OS processes: a test can SIGKILL
// a node and a NATS server.
type failoverCluster struct {
	nats  *clustertest.Processes
	nodes []*proc
	addrs []string // the nodes, HOST:PORT
	lb    *clustertest.Balancer
	link  string // a room, through the balancer
}

func startFailoverCluster(t *testing.T) *failoverCluster {
	t.Helper()
	c := &failoverCluster{nats: clustertest.StartProcesses(t, 3)}
	for i := range 3 {
		list := append([]string{c.nats.URLs[i]}, c.nats.URLs...)
		p, url := startServer(t, "--cluster", strings.Join(list, ","), "--cluster-name", fmt.Sprintf("node%d", i+1),
			"--metrics-addr", "", "--relay-max-bytes", "64MiB")
		c.nodes, c.addrs = append(c.nodes, p), append(c.addrs, strings.TrimPrefix(url, "http://"))
	}
	c.lb = clustertest.NewBalancer(t, c.addrs...)
	c.link, _ = newRoom(t, "http://"+c.lb.Addr)
	return c
}

// natsOf is the index of the NATS server node i (0-based) is connected to,
// from the servers' /connz.
func (c *failoverCluster) natsOf(t *testing.T, i int) int {
	t.Helper()
	prefix := fmt.Sprintf("cloakroom node%d-", i+1)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for j, p := range c.nats.Procs {
			names, err := p.Clients(t.Context())
			if err == nil && slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
				return j
			}
		}
		time.Sleep(50 * time.Millisecond) // a node between two NATS servers
	}
	t.Fatalf("node %d is connected to no NATS server", i+1)
	return -1
}

// kill SIGKILLs cloakroom node victim and the NATS server that node
// survivor is connected to; survivor must move its NATS connection to
// another server.
func (c *failoverCluster) kill(t *testing.T, victim, survivor int) {
	t.Helper()
	server := c.natsOf(t, survivor)
	if err := c.nodes[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.nats.Procs[server].Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed node %d and NATS server %d (node %d's)", victim+1, server+1, survivor+1)
	c.nodes[survivor].waitLine(t, regexp.MustCompile(`cluster: NATS reconnected`), 30*time.Second)
	if now := c.natsOf(t, survivor); now == server {
		t.Fatalf("node %d still on the killed NATS server %d", survivor+1, server+1)
	}
}

// TestCLIClusterFailover: three nodes behind a load balancer; mid-way
// through a relay transfer the node of one receiver is SIGKILLed, and so
// is the NATS server process another node is connected to. The receiver
// reconnects (through the balancer) to another node, which holds its copy
// of the items still owed; the other node moves to another NATS server;
// the transfer completes, both copies match, and each receiver wrote the
// file once.
func TestCLIClusterFailover(t *testing.T) { failoverTransfer(t, false) }

// TestCLIClusterFailoverSender: as TestCLIClusterFailover, but the node
// SIGKILLed mid-transfer is the sender's: the sender reconnects through
// the balancer to another node and the transfer completes there (a new
// round that skips what the receivers hold), both copies match, each
// receiver wrote the file once.
func TestCLIClusterFailoverSender(t *testing.T) { failoverTransfer(t, true) }

func failoverTransfer(t *testing.T, killSender bool) {
	c := startFailoverCluster(t)
	size := transferSize(t)
	src, want := randomFile(t, t.TempDir(), size)
	inRoom := regexp.MustCompile(`in the room`)
	out2, out3 := t.TempDir(), t.TempDir()
	r2 := start(t, "recv", "--transport", "relay", "-o", out2, "--count", "1", c.link)
	r2.waitLine(t, inRoom, 20*time.Second)
	victim, moved, who := slices.Index(c.lb.Active(), 1), r2, "receiver" // r2's node
	r3 := start(t, "recv", "--transport", "relay", "-o", out3, "--count", "1", c.link)
	r3.waitLine(t, inRoom, 20*time.Second)
	senderNode := slices.Index(c.lb.Active(), 0) // where the sender lands
	snd := start(t, "send", "--transport", "relay", c.link, src)
	waitPartial(t, out2, size/4, 60*time.Second)
	if killSender {
		if got := c.lb.Active(); got[senderNode] != 1 {
			t.Fatalf("connections per node %v: the sender is not alone on node %d", got, senderNode+1)
		}
		victim, moved, who = senderNode, snd, "sender"
	}
	c.kill(t, victim, (victim+1)%3)
	if err := snd.wait(t, 120*time.Second+time.Duration(size>>20)*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	for i, r := range []*proc{r2, r3} {
		if err := r.wait(t, 30*time.Second); err != nil {
			t.Fatalf("recv %d: %v", i+2, err)
		}
	}
	for i, dir := range []string{out2, out3} {
		if sha := fileSHA(t, filepath.Join(dir, "random.bin")); sha != want {
			t.Fatalf("recv %d: SHA-256 %s, want %s", i+2, sha, want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("recv %d wrote %d entries, want the one file", i+2, len(ents))
		}
	}
	if !slices.ContainsFunc(moved.output(), func(l string) bool { return strings.Contains(l, "reconnecting") }) {
		t.Errorf("the %s on the killed node never reconnected: %q", who, moved.output())
	}
}

// waitPartial waits until a receiver writing into dir holds at least n
// bytes of its file, as its chunk bitmap (the .have sidecar beside the
// partial file) says: the receiver is mid-transfer. (The partial file's
// size says nothing: its blocks are allocated 64 MiB ahead.)
func waitPartial(t *testing.T, dir string, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".have") && heldBytes(filepath.Join(dir, e.Name())) >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // the files give no event to wait on
	}
	t.Fatalf("no partial file of %d bytes in %s within %s", n, dir, timeout)
}

// heldBytes reads a chunk bitmap sidecar (client/transfer/resume.go:
// "CRHAVE1\n", size u64, chunk size u32, chunks u32, then one bit per
// chunk) and returns the bytes of the chunks it marks held.
func heldBytes(path string) int64 {
	b, err := os.ReadFile(path)
	const header = 8 + 8 + 4 + 4
	if err != nil || len(b) < header || string(b[:8]) != "CRHAVE1\n" {
		return 0
	}
	chunk := int64(binary.BigEndian.Uint32(b[16:20]))
	held := 0
	for _, x := range b[header:] {
		held += bits.OnesCount8(x)
	}
	return int64(held) * chunk
}
