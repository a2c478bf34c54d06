package main

// The fallback ladder of `--transport auto` across real network topologies:
// the server in the root network namespace, clients in namespaces of their
// own that reach the server but not each other.
//
// Topology (B is a free second octet chosen per run, N the test's pid):
//
//	root:  lo         10.B.0.1/32   (the server: HTTP, TURN, relay addresses)
//	       crhN-a     10.B.1.1/24   veth ── crnN-a  10.B.1.2/24  in netns crN-a
//	       crhN-b     10.B.2.1/24   veth ── crnN-b  10.B.2.2/24  in netns crN-b
//	crN-a: lo up; route 10.B.0.1/32 via 10.B.1.1 (nothing else)
//	crN-b: lo up; route 10.B.0.1/32 via 10.B.2.1 (nothing else)
//
// Neither namespace has a route to the other's /24, so the only way between
// them is through the server's address: a direct ICE connection cannot
// form, a TURN-relayed one can. The test checks that with UDP probes before
// it relies on it.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"cloakroom/internal/testport"
)

// iceTimeout bounds each peer-to-peer attempt in the namespace tests (the
// client's default is 10 s): the direct rung has to time out before auto
// moves on, and the TURN rung must still connect within it on a busy box.
const iceTimeout = 5 * time.Second

// netTopo is the namespace topology of one test run.
type netTopo struct {
	nsA, nsB     string // namespace names
	server       string // the server's address, on the root namespace's lo
	addrA, addrB string // the namespaces' veth addresses
}

// ipCmd runs `ip args…` and returns its combined output.
func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := ipCmd(args...); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cleanupIP registers `ip args…` as a cleanup; failures are logged (the
// object may be gone already, e.g. a veth deleted with its namespace).
func cleanupIP(t *testing.T, args ...string) {
	t.Cleanup(func() {
		if out, err := ipCmd(args...); err != nil && !strings.Contains(out, "Cannot find") && !strings.Contains(out, "No such") {
			t.Logf("cleanup: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	})
}

// freeOctet picks B such that nothing in the root namespace uses 10.B.0.0/16
// (another run of this test, a leftover, a real network).
func freeOctet(t *testing.T) int {
	t.Helper()
	// Tests run in parallel may look before either has added its addresses:
	// an octet handed out stays taken for the process's life.
	octetsMu.Lock()
	defer octetsMu.Unlock()
	addrs, err := ipCmd("-4", "-o", "addr", "show")
	if err != nil {
		t.Fatalf("ip addr show: %v: %s", err, addrs)
	}
	routes, err := ipCmd("-4", "route", "show", "table", "all")
	if err != nil {
		t.Fatalf("ip route show: %v: %s", err, routes)
	}
	used := addrs + "\n" + routes
	start := 20 + os.Getpid()%200
	for i := 0; i < 200; i++ {
		b := 20 + (start-20+i)%200
		if !octetsTaken[b] && !regexp.MustCompile(fmt.Sprintf(`(^|[^0-9.])10\.%d\.`, b)).MatchString(used) {
			octetsTaken[b] = true
			return b
		}
	}
	t.Fatal("no free 10.B.0.0/16 for the test topology")
	return 0
}

var (
	octetsMu    sync.Mutex
	octetsTaken = map[int]bool{}
)

// setupTopology builds the topology above; everything is removed in
// t.Cleanup. It fails the test (never skips) without the privileges.
func setupTopology(t *testing.T) *netTopo {
	t.Helper()
	pid := os.Getpid()
	b := freeOctet(t)
	topo := &netTopo{
		nsA: fmt.Sprintf("cr%d-a", pid), nsB: fmt.Sprintf("cr%d-b", pid),
		server: fmt.Sprintf("10.%d.0.1", b),
		addrA:  fmt.Sprintf("10.%d.1.2", b), addrB: fmt.Sprintf("10.%d.2.2", b),
	}
	if out, err := ipCmd("netns", "add", topo.nsA); err != nil {
		t.Fatalf("ip netns add %s: %v: %s\nthis test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces; run it as root", topo.nsA, err, out)
	}
	cleanupIP(t, "netns", "del", topo.nsA)
	mustIP(t, "netns", "add", topo.nsB)
	cleanupIP(t, "netns", "del", topo.nsB)

	mustIP(t, "addr", "add", topo.server+"/32", "dev", "lo")
	cleanupIP(t, "addr", "del", topo.server+"/32", "dev", "lo")

	for i, ns := range []string{topo.nsA, topo.nsB} {
		side := string(rune('a' + i))
		host, peer := fmt.Sprintf("crh%d-%s", pid, side), fmt.Sprintf("crn%d-%s", pid, side)
		hostIP, peerIP := fmt.Sprintf("10.%d.%d.1", b, i+1), fmt.Sprintf("10.%d.%d.2", b, i+1)
		mustIP(t, "link", "add", host, "type", "veth", "peer", "name", peer)
		cleanupIP(t, "link", "del", host) // also deletes peer, wherever it is
		mustIP(t, "link", "set", peer, "netns", ns)
		mustIP(t, "addr", "add", hostIP+"/24", "dev", host)
		mustIP(t, "link", "set", host, "up")
		mustIP(t, "-n", ns, "link", "set", "lo", "up")
		mustIP(t, "-n", ns, "addr", "add", peerIP+"/24", "dev", peer)
		mustIP(t, "-n", ns, "link", "set", peer, "up")
		mustIP(t, "-n", ns, "route", "add", topo.server+"/32", "via", hostIP)
	}
	for _, ns := range []string{topo.nsA, topo.nsB} {
		routes, _ := ipCmd("-n", ns, "-4", "route", "show")
		t.Logf("routes in %s:\n%s", ns, routes)
	}
	return topo
}

// inNetns runs f on an OS thread switched into network namespace ns ("" is
// the test's own namespace). Sockets f creates belong to ns for good.
func inNetns(ns string, f func() error) error {
	if ns == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the thread, now in another namespace, is
		// thrown away when this goroutine returns.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// udpReaches reports whether datagrams sent from namespace from reach a
// UDP socket bound to ip in namespace to.
func udpReaches(t *testing.T, from, to, ip string) bool {
	t.Helper()
	var ln net.PacketConn
	if err := inNetns(to, func() (err error) {
		ln, err = net.ListenPacket("udp4", net.JoinHostPort(ip, "0"))
		return err
	}); err != nil {
		t.Fatalf("probe listener on %s in %q: %v", ip, to, err)
	}
	defer ln.Close()
	payload := []byte("cloakroom probe " + strconv.Itoa(os.Getpid()))
	var sendErr error
	if err := inNetns(from, func() error {
		c, err := net.Dial("udp4", ln.LocalAddr().String())
		if err != nil {
			sendErr = err
			return nil
		}
		defer c.Close()
		for i := 0; i < 3; i++ {
			if _, err := c.Write(payload); err != nil {
				sendErr = err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("probe sender in %q: %v", from, err)
	}
	_ = ln.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 128)
	for {
		n, _, err := ln.ReadFrom(buf)
		if err != nil {
			t.Logf("probe %q -> %s (in %q): not reached (send error: %v)", from, ln.LocalAddr(), to, sendErr)
			return false
		}
		if bytes.Equal(buf[:n], payload) {
			return true
		}
	}
}

// checkIsolation proves the topology does what the test needs: both
// namespaces reach the server's address, neither reaches the other (on its
// veth address or its loopback).
func checkIsolation(t *testing.T, topo *netTopo) {
	t.Helper()
	must := []struct{ from, to, ip string }{
		{topo.nsA, "", topo.server},
		{topo.nsB, "", topo.server},
		{"", topo.nsA, topo.addrA}, // the probe listeners themselves work
		{"", topo.nsB, topo.addrB},
	}
	for _, p := range must {
		if !udpReaches(t, p.from, p.to, p.ip) {
			t.Fatalf("topology broken: UDP from %q does not reach %s in %q", p.from, p.ip, p.to)
		}
	}
	mustNot := []struct{ from, to, ip string }{
		{topo.nsA, topo.nsB, topo.addrB},
		{topo.nsB, topo.nsA, topo.addrA},
		{topo.nsA, topo.nsB, "127.0.0.1"},
		{topo.nsB, topo.nsA, "127.0.0.1"},
	}
	for _, p := range mustNot {
		if udpReaches(t, p.from, p.to, p.ip) {
			t.Fatalf("topology leaks: UDP from %q reaches %s in %q; direct connections would not be blocked", p.from, p.ip, p.to)
		}
	}
}

// startProg starts any program (here `ip netns exec NS cloakroom …`) as a
// proc whose output lines can be awaited, like start.
func startProg(t *testing.T, prog string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(prog, args...), notify: make(chan struct{}), done: make(chan struct{})}
	stdout, _ := p.cmd.StdoutPipe()
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s %v: %v", prog, args, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go p.collect(&wg, stdout, "")
	go p.collect(&wg, stderr, "stderr: ")
	go func() {
		wg.Wait()
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill() // ip netns exec execs the program: this is cloakroom itself
		<-p.done
		if t.Failed() {
			t.Logf("output of %s %v:\n%s", prog, args, strings.Join(p.output(), "\n"))
		}
	})
	return p
}

// startCloakroomIn starts the binary in namespace ns ("" for the root one).
func startCloakroomIn(t *testing.T, ns string, args ...string) *proc {
	t.Helper()
	if ns == "" {
		return start(t, args...)
	}
	return startProg(t, "ip", append([]string{"netns", "exec", ns, binPath}, args...)...)
}

// freePortOn returns a port free for both UDP and TCP on ip, below the
// kernel's ephemeral range (so no outgoing connection takes it before the
// server binds it).
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	p, err := testport.Free(ip, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	rungFailedRe    = regexp.MustCompile(`peer-to-peer rung failed.* mode=(\S+)`)
	rungAbandonedRe = regexp.MustCompile(`peer-to-peer rung abandoned.* mode=(\S+)`)
)

// TestCLIFallbackLadder: `--transport auto` takes the direct path when the
// peers can reach each other, TURN when they cannot, and the relay store
// when the server runs no TURN — the path asserted from the sender's report,
// the bytes by SHA-256. The ladder alone: --relay-wait -1s keeps the relay
// out until every rung failed (relay first has TestCLIRelayFirst). The TURN
// rung starts beside the direct one after --rung-stagger, so a direct rung
// that cannot connect either fails (its ICE timeout) or is abandoned when
// TURN wins first.
func TestCLIFallbackLadder(t *testing.T) {
	topo := setupTopology(t)
	checkIsolation(t, topo)
	src, want := randomFile(t, t.TempDir(), 8<<20)

	cases := []struct {
		name           string
		turn           bool
		sendNS, recvNS string
		wantPath       string   // exact path, or a prefix ending in "*"
		wantFailed     []string // rungs the sender must report as failed (or abandoned), sorted
	}{
		{"direct/root", true, "", "", "direct", nil},
		{"direct/same-namespace", true, topo.nsA, topo.nsA, "direct", nil},
		{"turn/no-route", true, topo.nsA, topo.nsB, "TURN*", []string{"direct"}},
		{"relay/no-route-no-turn", false, topo.nsA, topo.nsB, "relay", []string{"direct", "turn"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve", "--addr", topo.server + ":0", "--public-ip", topo.server, "--turn-allow-private", "--relay-max-bytes", "64MiB"}
			if tc.turn {
				args = append(args, "--turn-port", strconv.Itoa(freePortOn(t, topo.server)))
			} else {
				args = append(args, "--turn-port", "0")
			}
			srv := start(t, args...)
			url := srv.waitLine(t, servingRe, 20*time.Second)[1]
			link, _ := newRoom(t, url)

			out := t.TempDir()
			recv := startCloakroomIn(t, tc.recvNS, "recv", "--transport", "auto", "--ice-timeout", iceTimeout.String(), "-o", out, "--count", "1", link)
			recv.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)

			began := time.Now()
			snd := startCloakroomIn(t, tc.sendNS, "send", "--transport", "auto", "--ice-timeout", iceTimeout.String(), "--relay-wait=-1s", "--log-level", "info", link, src)
			if err := snd.wait(t, 60*time.Second); err != nil {
				t.Fatalf("send: %v", err)
			}
			elapsed := time.Since(began)
			if err := recv.wait(t, 20*time.Second); err != nil {
				t.Fatalf("recv: %v", err)
			}
			recvLag := time.Since(began) - elapsed
			got := filepath.Join(out, filepath.Base(src))
			if !containsLine(recv.output(), got) {
				t.Errorf("recv did not print %s on stdout", got)
			}
			if sha := fileSHA(t, got); sha != want {
				t.Fatalf("SHA-256 %s, want %s", sha, want)
			}

			var paths, failed []string
			for _, l := range snd.output() {
				if m := deliveredRe.FindStringSubmatch(l); m != nil {
					paths = append(paths, m[1])
				}
				if m := rungFailedRe.FindStringSubmatch(l); m != nil {
					failed = append(failed, m[1])
				}
				if m := rungAbandonedRe.FindStringSubmatch(l); m != nil {
					failed = append(failed, m[1])
				}
			}
			if len(paths) != 1 {
				t.Fatalf("sender reported %d deliveries (%v), want 1", len(paths), paths)
			}
			if prefix, ok := strings.CutSuffix(tc.wantPath, "*"); ok && !strings.HasPrefix(paths[0], prefix) || !ok && paths[0] != tc.wantPath {
				t.Errorf("auto delivered via %q, want %s", paths[0], tc.wantPath)
			}
			slices.Sort(failed) // rungs overlap (--rung-stagger): the order they end in is timing
			if strings.Join(failed, ",") != strings.Join(tc.wantFailed, ",") {
				t.Errorf("sender's failed rungs %v, want %v", failed, tc.wantFailed)
			}
			t.Logf("send %s -> recv %s: via %s in %s (failed rungs first: %v); recv exited %s after send", nsName(tc.sendNS), nsName(tc.recvNS), paths[0], elapsed.Round(time.Millisecond), failed, recvLag.Round(time.Millisecond))
		})
	}
}

func nsName(ns string) string {
	if ns == "" {
		return "root"
	}
	return ns
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

var signalRefusedRe = regexp.MustCompile(`signal refused`)

// TestCLIFallbackLadderRepeatedDirect: where direct works, auto must take it
// every time, not only most of the time. One send process sends many small
// files to one recv process; each file is a fresh peer connection (offer,
// answer, trickled candidates through the server), and each must be
// delivered direct. A signal the receiving client refuses as "replayed or
// out of order" while no one tampers with the signalling aborts that
// attempt, and auto falls back to TURN after the ICE timeout.
func TestCLIFallbackLadderRepeatedDirect(t *testing.T) {
	const files = 200
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	dir := t.TempDir()
	var srcs []string
	wants := map[string]string{}
	for i := 0; i < files; i++ {
		src, want := randomFile(t, dir, 16<<10)
		named := filepath.Join(dir, fmt.Sprintf("f%02d.bin", i))
		if err := os.Rename(src, named); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, named)
		wants[filepath.Base(named)] = want
	}
	out := t.TempDir()
	recv := start(t, "recv", "--transport", "auto", "--ice-timeout", iceTimeout.String(), "-o", out, "--count", strconv.Itoa(files), link)
	recv.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
	began := time.Now()
	snd := start(t, append([]string{"send", "--transport", "auto", "--ice-timeout", iceTimeout.String(), "--log-level", "info", link}, srcs...)...)
	if err := snd.wait(t, 30*time.Second+files*(iceTimeout+5*time.Second)); err != nil {
		t.Fatalf("send: %v", err)
	}
	elapsed := time.Since(began)
	if err := recv.wait(t, 20*time.Second); err != nil {
		t.Fatalf("recv: %v", err)
	}
	for name, want := range wants {
		if sha := fileSHA(t, filepath.Join(out, name)); sha != want {
			t.Errorf("%s: SHA-256 %s, want %s", name, sha, want)
		}
	}
	paths := map[string]int{}
	for _, l := range snd.output() {
		if m := deliveredRe.FindStringSubmatch(l); m != nil {
			paths[m[1]]++
		}
	}
	var refused []string
	for _, p := range []*proc{snd, recv} {
		for _, l := range p.output() {
			if signalRefusedRe.MatchString(l) {
				refused = append(refused, l)
			}
		}
	}
	t.Logf("%d files in %s: paths %v", files, elapsed.Round(time.Millisecond), paths)
	if paths["direct"] != files {
		t.Errorf("auto took direct for %d of %d files (paths %v), want all: direct works here", paths["direct"], files, paths)
	}
	if len(refused) > 0 {
		t.Errorf("the clients refused %d genuine signals (nobody tampers with the signalling here):\n%s", len(refused), strings.Join(refused, "\n"))
	}
}
