package main

// The acceptance test of the swarm: one sender whose uplink is slow, eight
// receivers whose links are not, all of them the real CLI.
//
// Topology (setupTopology's, plus a default route and a shaper; B is its
// free second octet, N the test's pid):
//
//	root:  lo        10.B.0.1/32   the server; the receivers also live here
//	       crhN-a    10.B.1.1/24   veth ── crnN-a 10.B.1.2/24 in netns crN-a
//	crN-a: the sender; default route via 10.B.1.1; the egress of crnN-a
//	       shaped by tc tbf (20 Mbit/s by default, below)
//
// Everything the sender puts on the wire (to the server and to every
// receiver) leaves through crnN-a, and the kernel counts it there; the
// receivers reach the sender's 10.B.1.2 directly and each other over the
// root namespace's own addresses, unshaped. Every client runs with
// --transport p2p, so neither TURN nor the relay store carries file bytes.
//
// CLOAKROOM_SWARM_MIB sets the file size in MiB (default 64; 32 is a quick
// run while developing, 256 the size the bounds were first measured at),
// CLOAKROOM_SWARM_MBIT the sender's uplink (default 20). Both bounds are
// ratios, and at 20 Mbit/s both the wire time and the CPU grow with the
// size, so 64 MiB asserts what 256 did in a quarter of the time
// (BENCHMARKS.md, "CI time"): ~30 s per phase at line rate (64 MiB beside
// the browser tests: ratios 1.05 and 1.10).
//
// Why 20 Mbit/s and not the example of 100: the time bound compares
// a network-bound run (one receiver) with one where nine processes move
// eight copies through pion on this machine's two cores. A 256 MiB copy
// costs ~25 CPU-seconds end to end here (FACTS.md, BENCHMARKS.md), so eight
// copies need ~100 s of wall time on two cores whatever the schedule, while
// one copy at 100 Mbit/s takes ~24 s: the bound then measures the CPU, not
// the swarm. At 20 Mbit/s the sender's link is the bottleneck again, which
// is what the bound is about. At 100 Mbit/s the byte bound still holds
// (1.12 x the file, BENCHMARKS.md) and the time is CPU-bound.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	swarmReceivers = 8
	swarmMaxBytes  = 1.3 // sender tx bytes / file size, 8 receivers
	swarmMaxTime   = 1.5 // wall time 8 receivers / wall time 1 receiver
)

// swarmMbit is the sender's uplink in Mbit/s: CLOAKROOM_SWARM_MBIT, default
// 20 (where this 2-core machine's CPU is not the bottleneck; see above).
func swarmMbit(t *testing.T) int {
	t.Helper()
	s := os.Getenv("CLOAKROOM_SWARM_MBIT")
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("CLOAKROOM_SWARM_MBIT=%q: want a positive number of Mbit/s", s)
	}
	return n
}

func swarmSize(t *testing.T) int64 {
	t.Helper()
	s := os.Getenv("CLOAKROOM_SWARM_MIB")
	if s == "" {
		return 64 << 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("CLOAKROOM_SWARM_MIB=%q: want a positive number of MiB", s)
	}
	return int64(n) << 20
}

// netnsIface returns the name of the interface holding addr in namespace ns.
func netnsIface(t *testing.T, ns, addr string) string {
	t.Helper()
	out, err := ipCmd("-n", ns, "-o", "-4", "addr", "show", "to", addr+"/32")
	f := strings.Fields(out)
	if err != nil || len(f) < 2 {
		t.Fatalf("interface of %s in %s: %v: %q", addr, ns, err, out)
	}
	return f[1]
}

// txBytes reads the kernel's transmit counter of interface dev in namespace
// ns (ip netns exec mounts that namespace's /sys).
func txBytes(t *testing.T, ns, dev string) int64 {
	t.Helper()
	out, err := runOut("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/statistics/tx_bytes")
	if err != nil {
		t.Fatalf("tx_bytes of %s in %s: %v: %s", dev, ns, err, out)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("tx_bytes of %s in %s: %q: %v", dev, ns, out, err)
	}
	return n
}

// routeVia returns the gateway namespace ns uses to reach ip.
func routeVia(t *testing.T, ns, ip string) string {
	t.Helper()
	out, err := ipCmd("-n", ns, "-4", "route", "get", ip)
	m := regexp.MustCompile(`\bvia (\S+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("route to %s in %s: %v: %q", ip, ns, err, out)
	}
	return m[1]
}

// cpuTime is the user+system CPU time of an exited process.
func cpuTime(p *proc) time.Duration {
	if p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

func tcCmd(args ...string) (string, error) { return runOut("tc", args...) }

// TestCLISwarmShapedSender asserts, with the sender's uplink shaped (20
// Mbit/s unless CLOAKROOM_SWARM_MBIT says) and the receivers unshaped (all
// CLI, --transport p2p):
//
//   - phase 1, one receiver: the file arrives intact; its wall time (send
//     start until the receiver exited having printed the path and the
//     sender exited) is the baseline;
//   - phase 2, eight `recv --count 1` in the room before `send` starts:
//     every SHA-256 matches; the bytes leaving the sender's interface,
//     read from the kernel's tx_bytes counter of its veth, are at most
//     1.3 × the file size; the wall time until the sender and all eight
//     receivers exited is at most 1.5 × the phase-1 time.
//
// It prints both figures on one line starting "swarm:". Without the swarm
// the sender uploaded eight copies and phase 2 failed both bounds (see
// BENCHMARKS.md, "Swarm: one shaped sender, eight receivers"). Like the
// other namespace tests it needs root and fails (never skips) without it.
func TestCLISwarmShapedSender(t *testing.T) {
	size, mbit := swarmSize(t), swarmMbit(t)
	rate := strconv.Itoa(mbit) + "mbit"
	topo := setupTopology(t)
	ns := topo.nsA
	gw := routeVia(t, ns, topo.server) // the root side of ns's veth
	mustIP(t, "-n", ns, "route", "add", "default", "via", gw)
	dev := netnsIface(t, ns, topo.addrA)
	if out, err := tcCmd("-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "50ms"); err != nil {
		t.Fatalf("tc qdisc tbf on %s in %s: %v: %s", dev, ns, err, out)
	}
	qdisc := func() string { out, _ := tcCmd("-n", ns, "-s", "qdisc", "show", "dev", dev); return out }
	t.Logf("sender %s in %s, egress shaped:\n%s", dev, ns, qdisc())
	for _, p := range []struct{ from, to, ip string }{
		{ns, "", topo.server}, {ns, "", gw}, {"", ns, topo.addrA},
	} {
		if !udpReaches(t, p.from, p.to, p.ip) {
			t.Fatalf("topology broken: UDP from %q does not reach %s in %q", p.from, p.ip, p.to)
		}
	}

	srv := start(t, "serve", "--addr", topo.server+":0", "--public-ip", topo.server, "--turn-port", "0", "--relay-max-bytes", "16MiB")
	url := srv.waitLine(t, servingRe, 20*time.Second)[1]
	src, want := randomFile(t, t.TempDir(), size)
	wire := time.Duration(float64(size*8) / (float64(mbit) * 1e6) * float64(time.Second)) // the file at line rate
	inRoom := regexp.MustCompile(`in the room`)

	// run moves the file from the shaped sender to n receivers in a fresh
	// room and returns the wall time and the sender's tx bytes.
	run := func(n int, timeout time.Duration) (time.Duration, int64) {
		t.Helper()
		link, _ := newRoom(t, url)
		outs := make([]string, n)
		recvs := make([]*proc, n)
		for i := range recvs {
			outs[i] = t.TempDir()
			recvs[i] = start(t, "recv", "--transport", "p2p", "-o", outs[i], "--count", "1", link)
		}
		for _, r := range recvs {
			r.waitLine(t, inRoom, 30*time.Second)
		}
		tx0 := txBytes(t, ns, dev)
		began := time.Now()
		deadline := began.Add(timeout)
		snd := startCloakroomIn(t, ns, "send", "--transport", "p2p", "--log-level", "info", link, src)
		for i, p := range append([]*proc{snd}, recvs...) {
			if err := p.wait(t, time.Until(deadline)); err != nil {
				t.Fatalf("%d receivers: process %d (0 is send) after %s: %v", n, i, time.Since(began).Round(time.Millisecond), err)
			}
		}
		elapsed := time.Since(began)
		sent := txBytes(t, ns, dev) - tx0
		for i, r := range recvs {
			got := filepath.Join(outs[i], filepath.Base(src))
			if !containsLine(r.output(), got) {
				t.Errorf("%d receivers: recv %d did not print %s on stdout", n, i, got)
			}
			if sha := fileSHA(t, got); sha != want {
				t.Errorf("%d receivers: recv %d: SHA-256 %s, want %s", n, i, sha, want)
			}
		}
		paths := map[string]int{}
		for _, l := range snd.output() {
			if m := deliveredRe.FindStringSubmatch(l); m != nil {
				paths[m[1]]++
			}
		}
		for p := range paths {
			if p != "direct" {
				t.Errorf("%d receivers: sender delivered via %s (paths %v); --transport p2p must be direct", n, p, paths)
			}
		}
		var recvCPU time.Duration
		for _, r := range recvs {
			recvCPU += cpuTime(r)
		}
		t.Logf("%d receiver(s): %s, sender tx %.1f MiB (%.3f × file), deliveries %v; CPU: sender %.1f s, receivers %.1f s in all; qdisc:\n%s",
			n, elapsed.Round(time.Millisecond), float64(sent)/(1<<20), float64(sent)/float64(size), paths,
			cpuTime(snd).Seconds(), recvCPU.Seconds(), qdisc())
		return elapsed, sent
	}

	one, oneSent := run(1, 60*time.Second+4*wire)
	if t.Failed() {
		t.FailNow()
	}
	many, sent := run(swarmReceivers, 60*time.Second+4*wire+swarmReceivers*2*one)
	ratio, bytesRatio := many.Seconds()/one.Seconds(), float64(sent)/float64(size)
	t.Logf("swarm: 1 receiver %.1f s, %d receivers %.1f s (ratio %.2f); sender sent %.1f MiB = %.2f × file (%.2f × with 1 receiver); file %d MiB, uplink %s",
		one.Seconds(), swarmReceivers, many.Seconds(), ratio, float64(sent)/(1<<20), bytesRatio, float64(oneSent)/float64(size), size>>20, rate)
	if bytesRatio > swarmMaxBytes {
		t.Errorf("the sender's interface sent %.2f × the file size to %d receivers, want ≤ %.1f ×", bytesRatio, swarmReceivers, swarmMaxBytes)
	}
	if ratio > swarmMaxTime {
		t.Errorf("%d receivers took %.2f × the time of one, want ≤ %.1f ×", swarmReceivers, ratio, swarmMaxTime)
	}
}

// runOut runs a program and returns its trimmed combined output.
func runOut(prog string, args ...string) (string, error) {
	out, err := exec.Command(prog, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
