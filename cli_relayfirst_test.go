package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var relayUploadRe = regexp.MustCompile(`relay upload (\d+) bytes in (\d+) round\(s\) for a (\d+)-byte file; (\d+) bytes peer-to-peer`)

// txCounter reads the transmit counter of a root-namespace interface.
func txCounter(dev string) (int64, error) {
	b, err := os.ReadFile("/sys/class/net/" + dev + "/statistics/tx_bytes")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// firstBytes polls dev's transmit counter from now on and returns a
// channel that gets the time at which more than n bytes had left it.
func firstBytes(t *testing.T, dev string, n int64, stop <-chan struct{}) <-chan time.Time {
	base, err := txCounter(dev)
	if err != nil {
		t.Fatalf("tx_bytes of %s: %v", dev, err)
	}
	out := make(chan time.Time, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				v, err := txCounter(dev)
				if err != nil {
					return
				}
				if v-base > n {
					out <- now
					return
				}
			}
		}
	}()
	return out
}

// TestCLIRelayFirst: a send in auto mode between members that cannot reach
// each other directly starts on the relay at once and moves to TURN when
// that connects, mid-file, without sending chunks twice. The sender's
// uplink is shaped (tbf) so the file takes several seconds; the time to the
// receiver's first bytes is read from the kernel's counter of the veth
// towards the receiver; "re-sent" is what the sender uploaded to the relay
// plus what it served on the session, less the file size.
func TestCLIRelayFirst(t *testing.T) {
	const size = 64 << 20
	topo := setupTopology(t)
	checkIsolation(t, topo)
	dev := netnsIface(t, topo.nsA, topo.addrA)
	if out, err := tcCmd("-n", topo.nsA, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", "64mbit", "burst", "64kb", "latency", "50ms"); err != nil {
		t.Fatalf("tc qdisc tbf on %s in %s: %v: %s", dev, topo.nsA, err, out)
	}
	src, want := randomFile(t, t.TempDir(), size)
	srv := start(t, "serve", "--addr", topo.server+":0", "--public-ip", topo.server, "--turn-allow-private",
		"--turn-port", strconv.Itoa(freePortOn(t, topo.server)))
	url := srv.waitLine(t, servingRe, 20*time.Second)[1]
	link, _ := newRoom(t, url)
	out := t.TempDir()
	recv := startCloakroomIn(t, topo.nsB, "recv", "--transport", "auto", "-o", out, "--count", "1", link)
	recv.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)

	toRecv := fmt.Sprintf("crh%d-b", os.Getpid()) // the root side of the receiver's veth
	stop := make(chan struct{})
	defer close(stop)
	first := firstBytes(t, toRecv, 256<<10, stop)
	began := time.Now()
	snd := startCloakroomIn(t, topo.nsA, "send", "--transport", "auto", "--log-level", "info", link, src)
	if err := snd.wait(t, 120*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	elapsed := time.Since(began)
	if err := recv.wait(t, 30*time.Second); err != nil {
		t.Fatalf("recv: %v", err)
	}
	if sha := fileSHA(t, filepath.Join(out, filepath.Base(src))); sha != want {
		t.Fatalf("SHA-256 %s, want %s", sha, want)
	}
	var ttfb time.Duration
	select {
	case at := <-first:
		ttfb = at.Sub(began)
	default:
		t.Fatal("the receiver's veth never carried 256 KiB")
	}
	var path string
	var uploaded, served int64 = -1, -1
	var tookOver bool
	for _, l := range snd.output() {
		if m := deliveredRe.FindStringSubmatch(l); m != nil {
			path = m[1]
		}
		if m := relayUploadRe.FindStringSubmatch(l); m != nil {
			uploaded, _ = strconv.ParseInt(m[1], 10, 64)
			served, _ = strconv.ParseInt(m[4], 10, 64)
		}
		tookOver = tookOver || strings.Contains(l, "took over from the relay")
	}
	// The progress bars name the path: the relay first, then TURN.
	for _, side := range []struct {
		p    *proc
		verb string
	}{{snd, "sending"}, {recv, "receiving"}} {
		all := strings.Join(side.p.output(), "\n")
		r, tu := strings.Index(all, side.verb+" random.bin via relay"), strings.Index(all, side.verb+" random.bin via TURN")
		if r < 0 || tu < r {
			t.Errorf("%s's progress does not show the move from the relay to TURN (relay at %d, TURN at %d)", side.verb, r, tu)
		}
	}
	resent := uploaded + served - size
	t.Logf("relay first: first 256 KiB at the receiver after %s; delivered via %s in %s; relay %d bytes, peer-to-peer %d bytes, re-sent %d (%.2f %%)",
		ttfb.Round(time.Millisecond), path, elapsed.Round(time.Millisecond), uploaded, served, resent, 100*float64(resent)/size)
	if !strings.HasPrefix(path, "TURN") {
		t.Errorf("delivered via %q, want TURN (the session that took over)", path)
	}
	if !tookOver || uploaded <= 0 || served <= 0 {
		t.Errorf("no mid-file move from the relay to TURN: took over %v, relay %d bytes, peer-to-peer %d bytes", tookOver, uploaded, served)
	}
	if resent > size/100 {
		t.Errorf("re-sent %d bytes, more than 1 %% of the file", resent)
	}
	if resent < 0 {
		t.Errorf("relay %d + peer-to-peer %d bytes < the file's %d: the accounting is wrong", uploaded, served, size)
	}
}
