package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// restrictFileSize is the file each network must carry (issue 16: 64 MiB).
const restrictFileSize = 64 << 20

// reach is what a network lets its member open: TCP to the server's HTTPS
// port, its TURN port (another port), the proxy, the middlebox; and UDP to
// the server.
type reach struct{ https, turnTCP, proxy, middlebox, udp bool }

var wantReach = map[string]reach{
	"a": {https: true, turnTCP: true, proxy: true, middlebox: true},
	"b": {https: true},
	"c": {proxy: true},
	"d": {middlebox: true},
	"o": {https: true, turnTCP: true, proxy: true, middlebox: true, udp: true},
}

// checkNetwork proves network x is what it says before the test uses it.
func checkNetwork(t *testing.T, n *restrictNets, x string) {
	t.Helper()
	m, want := n.members[x], wantReach[x]
	probes := []struct {
		name, addr string
		want       bool
	}{
		{"TCP to the server's HTTPS port", net.JoinHostPort(n.server, "443"), want.https},
		{"TCP to the server's TURN port", net.JoinHostPort(n.server, strconv.Itoa(turnPort)), want.turnTCP},
		{"TCP to the proxy", net.JoinHostPort(n.proxy, strconv.Itoa(proxyPort)), want.proxy},
		{"TCP to the middlebox", net.JoinHostPort(n.middlebox, "443"), want.middlebox},
	}
	got := make([]bool, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = tcpReaches(m.ns, p.addr)
		}()
	}
	wg.Wait()
	for i, p := range probes {
		if got[i] != p.want {
			t.Fatalf("network (%s) is not what it says: %s (%s) opens: %v, want %v", x, p.name, p.addr, got[i], p.want)
		}
	}
	if udp := udpReaches(t, m.ns, n.srvNS, n.server); udp != want.udp {
		t.Fatalf("network (%s) is not what it says: UDP to the server arrives: %v, want %v", x, udp, want.udp)
	}
}

// checkMiddlebox proves the middlebox passes HTTP and refuses WebSocket
// upgrades, as seen from network (d).
func checkMiddlebox(t *testing.T, n *restrictNets, ca *testCA) {
	t.Helper()
	ns := n.members["d"].ns
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     func(_ context.Context, _, a string) (net.Conn, error) { return dialIn(ns, a, 5*time.Second) },
		TLSClientConfig: &tls.Config{RootCAs: ca.pool},
	}}
	base := "https://" + net.JoinHostPort(n.middlebox, "443")
	for _, tc := range []struct {
		upgrade bool
		want    int
	}{{false, http.StatusOK}, {true, http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		if tc.upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("middlebox from (d): %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("middlebox from (d), upgrade %v: %s, want %d", tc.upgrade, resp.Status, tc.want)
		}
	}
}

// startEnvIn runs cloakroom in namespace ns with extra environment (an
// optional stdin pipe).
func startEnvIn(t *testing.T, ns string, env []string, stdin bool, args ...string) (*proc, io.WriteCloser) {
	t.Helper()
	argv := append([]string{"netns", "exec", ns, "env"}, env...)
	return startCmd(t, exec.Command("ip", append(append(argv, binPath), args...)...), stdin)
}

var turnsURLRe = regexp.MustCompile(`turns:(\S+?)\?transport=tcp`)

// TestCLIRestrictive: a member on each restrictive network of issue 16
// chats and sends a 64 MiB file to a member on an open network, over the
// path that network leaves: (a) UDP blocked: any; (b) TCP 443 only:
// TURN-TLS on 443; (c) a CONNECT proxy only: TURN-TLS through the proxy;
// (d) a WebSocket-refusing middlebox: the HTTP fallback.
//
// Only the sender is restricted: the issue's networks are "for the
// member", and a restricted member usually shares a room with members at
// home; the path then is the restricted member's (its side of the TURN
// pair), asserted from its own report and from the kernel's counters of
// its veth. It also prints the time from `send` to the receiver's first
// chunk on disk per network.
func TestCLIRestrictive(t *testing.T) {
	n := setupRestrictNets(t)
	ca := newTestCA(t, n.server, n.middlebox)
	serverURL := "https://" + net.JoinHostPort(n.server, "443")
	srv := startCloakroomIn(t, n.srvNS, "serve", "--addr", net.JoinHostPort(n.server, "443"),
		"--tls-cert", ca.certFile, "--tls-key", ca.keyFile, "--public-ip", n.server,
		"--turn-port", strconv.Itoa(turnPort), // TURN over TLS shares 443 with HTTPS and WSS (--turn-tls-mux, the default)
		"--turn-allow-private", "--relay-max-bytes", "256MiB")
	srv.waitLine(t, regexp.MustCompile(`serving on https://`), 20*time.Second)
	turnTLS := srv.waitLine(t, turnsURLRe, 5*time.Second)[1]
	proxy := startConnectProxy(t, n.srvNS, net.JoinHostPort(n.proxy, strconv.Itoa(proxyPort)), 443)
	mb := startMiddlebox(t, n.srvNS, net.JoinHostPort(n.middlebox, "443"), serverURL, ca)
	checkNetwork(t, n, "o")
	src, want := randomFile(t, t.TempDir(), restrictFileSize)
	caEnv := "SSL_CERT_FILE=" + ca.caFile

	cases := []struct {
		net, skip string
		env       []string
		server    string // the server's URL as the member reaches it
		check     func(t *testing.T, path string)
	}{
		{net: "a", server: serverURL, check: func(t *testing.T, path string) {}},
		{net: "b", server: serverURL, check: func(t *testing.T, path string) {
			if !strings.Contains(path, "TURN-TLS") {
				t.Errorf("network (b) delivered via %q, want TURN-TLS on 443", path)
			}
		}},
		{net: "c", server: serverURL, env: []string{"HTTPS_PROXY=" + proxy.URL()}, check: func(t *testing.T, path string) {
			if !strings.Contains(path, "TURN-TLS") {
				t.Errorf("network (c) delivered via %q, want TURN-TLS through the proxy", path)
			}
			tunnels, bytes, refused := proxy.stats()
			t.Logf("proxy: tunnels %v, bytes %v, refused %v", tunnels, bytes, refused)
			// One tunnel for the WebSocket, at least one more for TURN-TLS,
			// both to 443 (turnTLS, the one port); the file crossed them.
			if tunnels[turnTLS] < 2 || bytes[turnTLS] < restrictFileSize {
				t.Errorf("the proxy carried %d tunnels, %d bytes to %s: want the WebSocket's and TURN-TLS's, and the file", tunnels[turnTLS], bytes[turnTLS], turnTLS)
			}
		}},
		{net: "d", server: "https://" + net.JoinHostPort(n.middlebox, "443"), check: func(t *testing.T, path string) {
			if !strings.HasPrefix(path, "relay") {
				t.Errorf("network (d) delivered via %q, want the relay over the HTTP fallback", path)
			}
			if _, refused := mb.counts(); refused == 0 {
				t.Errorf("the middlebox refused no WebSocket upgrade: the client never tried one?")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.net, func(t *testing.T) {
			checkNetwork(t, n, tc.net)
			if tc.net == "d" {
				checkMiddlebox(t, n, ca)
			}
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			m := n.members[tc.net]
			// The member's uplink at 48 Mbit/s: the 64 MiB take about 11 s,
			// so the session that takes over from the relay comes mid-file.
			dev := strings.Replace(m.hostDev, "rs", "rm", 1)
			if out, err := tcCmd("-n", m.ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", "48mbit", "burst", "64kb", "latency", "50ms"); err != nil {
				t.Fatalf("tc qdisc tbf on %s in %s: %v: %s", dev, m.ns, err, out)
			}
			env := append([]string{caEnv}, tc.env...)
			member := func(link string) string { return strings.Replace(link, serverURL, tc.server, 1) }
			restrictedChat(t, n, env, member(roomIn(t, n, caEnv, serverURL)), tc.net)

			link := roomIn(t, n, caEnv, serverURL)
			out := t.TempDir()
			recv, _ := startEnvIn(t, n.members["o"].ns, []string{caEnv}, false, "recv", "--transport", "auto", "--ice-timeout", iceTimeout.String(), "-o", out, "--count", "1", link)
			recv.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
			rx0, _ := devBytes(t, n.srvNS, m.hostDev)
			began := time.Now()
			ttfb := watchFirstChunk(out, began, recv.done)
			snd, _ := startEnvIn(t, m.ns, env, false, "send", "--transport", "auto", "--ice-timeout", iceTimeout.String(), "--log-level", "info", member(link), src)
			if err := snd.wait(t, 120*time.Second); err != nil {
				t.Fatalf("send: %v", err)
			}
			elapsed := time.Since(began)
			if err := recv.wait(t, 30*time.Second); err != nil {
				t.Fatalf("recv: %v", err)
			}
			rx1, _ := devBytes(t, n.srvNS, m.hostDev)
			if sha := fileSHA(t, filepath.Join(out, filepath.Base(src))); sha != want {
				t.Fatalf("SHA-256 %s, want %s", sha, want)
			}
			var paths []string
			for _, l := range snd.output() {
				if mm := deliveredRe.FindStringSubmatch(l); mm != nil {
					paths = append(paths, mm[1])
				}
			}
			if len(paths) != 1 {
				t.Fatalf("sender reported %d deliveries (%v), want 1", len(paths), paths)
			}
			if said, proxied := hasLine(snd.output(), "through HTTP proxy"), len(tc.env) > 0; said != proxied {
				t.Errorf("sender said which proxy it went through: %v, want %v", said, proxied)
			}
			if rx1-rx0 < restrictFileSize {
				t.Errorf("the member's veth carried %d bytes out, less than the file (%d)", rx1-rx0, restrictFileSize)
			}
			tc.check(t, paths[0])
			if fell := hasLine(snd.output(), "connected over HTTP fallback"); fell != (tc.net == "d") {
				t.Errorf("network (%s): the sender said it fell back to HTTP: %v, want %v", tc.net, fell, tc.net == "d")
			}
			// Relay first: the bytes move at once on the relay; where a
			// session can connect it takes the rest over mid-file, and no
			// chunk goes twice (the sender's own count of each path).
			var uploaded, served int64 = -1, -1
			for _, l := range snd.output() {
				if mm := relayUploadRe.FindStringSubmatch(l); mm != nil {
					uploaded, _ = strconv.ParseInt(mm[1], 10, 64)
					served, _ = strconv.ParseInt(mm[4], 10, 64)
				}
			}
			resent := uploaded + served - restrictFileSize
			if tc.net == "d" {
				if uploaded != restrictFileSize {
					t.Errorf("network (d): relay upload %d bytes, want the whole file (%d) and nothing peer-to-peer (%d)", uploaded, restrictFileSize, served)
				}
			} else if uploaded <= 0 || served <= 0 || !hasLine(snd.output(), "took over from the relay") {
				t.Errorf("network (%s): no move from the relay to a session mid-file (relay %d bytes, peer-to-peer %d)", tc.net, uploaded, served)
			}
			if resent > restrictFileSize/100 || resent < 0 {
				t.Errorf("network (%s): relay %d + peer-to-peer %d bytes for a %d-byte file: re-sent %d, want 0 to 1 %%", tc.net, uploaded, served, restrictFileSize, resent)
			}
			first := <-ttfb
			rate := "?"
			if first > 0 {
				rate = fmt.Sprintf("%.1f MB/s", float64(restrictFileSize)/(elapsed-first).Seconds()/1e6)
			}
			t.Logf("network (%s): %d MiB via %s in %s, first chunk at the receiver %s after send began, %s from then; relay %.1f MiB then peer-to-peer %.1f MiB, re-sent %d bytes; member's veth out %d MiB",
				tc.net, restrictFileSize>>20, paths[0], elapsed.Round(time.Millisecond), first, rate, float64(uploaded)/(1<<20), float64(served)/(1<<20), resent, (rx1-rx0)>>20)
		})
	}
}

func hasLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// roomIn makes a room from the open network.
func roomIn(t *testing.T, n *restrictNets, caEnv, server string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.members["o"].ns, "env", caEnv, binPath, "new", "--server", server, "--no-qr").Output()
	if err != nil {
		t.Fatalf("cloakroom new: %v", err)
	}
	link, _, _ := strings.Cut(string(out), "\n")
	if !strings.HasPrefix(link, server+"/#") {
		t.Fatalf("cloakroom new printed %q, want a link", out)
	}
	return link
}

// restrictedChat: a line typed on network x reaches a member on the open
// network and the answer comes back.
func restrictedChat(t *testing.T, n *restrictNets, env []string, link, x string) {
	t.Helper()
	home, homeIn := startEnvIn(t, n.members["o"].ns, env[:1], true, "chat", link)
	home.waitLine(t, regexp.MustCompile(`\* connected`), 20*time.Second)
	away, awayIn := startEnvIn(t, n.members[x].ns, env, true, "chat", link)
	away.waitLine(t, regexp.MustCompile(`\* connected`), 30*time.Second)
	away.waitLine(t, regexp.MustCompile(`^stderr: \* ([0-9a-f]{8}) online$`), 20*time.Second)
	home.waitLine(t, regexp.MustCompile(`\* [0-9a-f]{8} join`), 20*time.Second)
	fmt.Fprintf(awayIn, "hello from network %s\n", x)
	home.waitLine(t, regexp.MustCompile(`^[0-9a-f]{8}: hello from network `+x+`$`), 20*time.Second)
	fmt.Fprintln(homeIn, "hello back")
	away.waitLine(t, regexp.MustCompile(`^[0-9a-f]{8}: hello back$`), 20*time.Second)
	awayIn.Close()
	homeIn.Close()
	for _, p := range []*proc{away, home} {
		if err := p.wait(t, 15*time.Second); err != nil {
			t.Fatalf("chat after EOF: %v", err)
		}
	}
}

// watchFirstChunk reports how long after began the receiver first held a
// chunk of a file in dir: a bit set in the chunk bitmap (.have) that it
// writes as chunks land. -1 if the reception ended before a poll saw one.
func watchFirstChunk(dir string, began time.Time, done <-chan struct{}) <-chan time.Duration {
	res := make(chan time.Duration, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				res <- -1
				return
			case <-tick.C:
			}
			haves, _ := filepath.Glob(filepath.Join(dir, ".cloakroom-*.have"))
			for _, h := range haves {
				b, err := os.ReadFile(h)
				if err == nil && len(b) > haveHeader && bytes.ContainsFunc(b[haveHeader:], func(r rune) bool { return r != 0 }) {
					res <- time.Since(began).Round(10 * time.Millisecond)
					return
				}
			}
		}
	}()
	return res
}

// haveHeader is the chunk bitmap's header (client/transfer: magic, size,
// chunk size, chunks).
const haveHeader = 8 + 8 + 4 + 4
