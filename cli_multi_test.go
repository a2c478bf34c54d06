package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
)

var (
	joinedRe       = regexp.MustCompile(`signaling: joined\b.*member=([0-9a-f-]{36})`)
	notDeliveredRe = regexp.MustCompile(`NOT delivered to ([0-9a-f]{8}): (.*)`)
	deliveredToRe  = regexp.MustCompile(`delivered to ([0-9a-f]{8}) via (\S+)`)
)

// waitJoins waits until the server has logged n joins and returns the
// member id of the nth.
func waitJoins(t *testing.T, srv *proc, n int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ids []string
		for _, l := range srv.output() {
			if m := joinedRe.FindStringSubmatch(l); m != nil {
				ids = append(ids, m[1])
			}
		}
		if len(ids) >= n {
			return ids[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("server logged %d joins within %s, want %d", len(ids), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// partWrittenPast reports whether a partial file in dir holds received
// data at offset off. Received files are preallocated to their full size,
// so the size says nothing; chunks of a random file are never all zero.
func partWrittenPast(dir string, off int64) bool {
	parts, _ := filepath.Glob(filepath.Join(dir, ".cloakroom-*.part"))
	for _, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		buf := make([]byte, 4096)
		n, _ := f.ReadAt(buf, off)
		f.Close()
		if n == len(buf) && !bytes.Equal(buf, make([]byte, len(buf))) {
			return true
		}
	}
	return false
}

// TestCLIThreeRecipientsOneKilled: one sender in auto, three receivers; one
// receiver is killed (SIGKILL) mid-transfer. The other two get the file
// intact, the sender reports them delivered and the killed one not, and
// exits non-zero within a bound instead of waiting for the dead one.
func TestCLIThreeRecipientsOneKilled(t *testing.T) {
	size := transferSize(t)
	if size < 256<<20 {
		size = 256 << 20 // long enough to kill a receiver in the middle
	}
	srv, url := startServer(t, "--log-level", "debug")
	link, _ := newRoom(t, url)
	src, want := randomFile(t, t.TempDir(), size)

	type receiver struct {
		p   *proc
		dir string
		id  string
	}
	var rs []receiver
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		p := start(t, "recv", "--transport", "auto", "-o", dir, "--count", "1", link)
		p.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
		rs = append(rs, receiver{p: p, dir: dir, id: waitJoins(t, srv, i+1, 10*time.Second)})
	}
	victim, survivors := rs[1], []receiver{rs[0], rs[2]}

	began := time.Now()
	snd := start(t, "send", "--transport", "auto", link, src)
	// When each survivor finished (its recv exits once the file is
	// written and verified), to compare with when the sender gave up.
	finished := make([]chan time.Duration, len(survivors))
	for i, r := range survivors {
		finished[i] = make(chan time.Duration, 1)
		go func() {
			<-r.p.done
			finished[i] <- time.Since(began)
		}()
	}

	// Kill the victim once a few MiB of the file are on its disk. There is
	// no event for that: poll, bounded.
	const killAt = 32 << 20
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for !partWrittenPast(victim.dir, killAt) {
		select {
		case <-tick.C:
		case <-victim.p.done:
			t.Fatalf("victim exited (%v) before it was killed", victim.p.err)
		case <-deadline:
			t.Fatalf("victim's partial file did not reach %s within 60 s", humanize.IBytes(killAt))
		}
	}
	if err := victim.p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAfter := time.Since(began)
	victim.p.wait(t, 10*time.Second)

	// Generous bound: the whole file at 5 MB/s, plus the time to notice
	// the dead peer.
	bound := 60*time.Second + time.Duration(size/5e6)*time.Second
	sendErr := snd.wait(t, bound)
	sendTook := time.Since(began)
	if sendErr == nil {
		t.Errorf("send exited 0 although a recipient was killed mid-transfer")
	}
	var survivorsTook []time.Duration
	for i, r := range survivors {
		if err := r.p.wait(t, 30*time.Second); err != nil {
			t.Fatalf("survivor %d (%s): recv: %v", i+1, r.id[:8], err)
		}
		got := filepath.Join(r.dir, filepath.Base(src))
		if sha := fileSHA(t, got); sha != want {
			t.Fatalf("survivor %d (%s): SHA-256 %s, want %s", i+1, r.id[:8], sha, want)
		}
		survivorsTook = append(survivorsTook, (<-finished[i]).Round(time.Millisecond))
	}
	// The sender learns of the dead peer when its ICE connection goes
	// disconnected (5 s without traffic); it must not wait much longer than
	// that after the survivors have their copies.
	if last := max(survivorsTook[0], survivorsTook[1]); sendTook > last+15*time.Second {
		t.Errorf("sender exited %s after the last survivor finished; it waited on the killed receiver", (sendTook - last).Round(time.Millisecond))
	}
	if _, err := os.Stat(filepath.Join(victim.dir, filepath.Base(src))); err == nil {
		t.Errorf("the killed receiver has a complete file; it was killed too late to test anything")
	}

	delivered := map[string]string{}
	notDelivered := map[string]string{}
	for _, l := range snd.output() {
		if m := notDeliveredRe.FindStringSubmatch(l); m != nil {
			notDelivered[m[1]] = m[2]
		} else if m := deliveredToRe.FindStringSubmatch(l); m != nil {
			delivered[m[1]] = m[2]
		}
	}
	for _, r := range survivors {
		if _, ok := delivered[r.id[:8]]; !ok {
			t.Errorf("sender does not report survivor %s as delivered (delivered: %v)", r.id[:8], delivered)
		}
	}
	if _, ok := delivered[victim.id[:8]]; ok {
		t.Errorf("sender reports the killed receiver %s as delivered", victim.id[:8])
	}
	if _, ok := notDelivered[victim.id[:8]]; !ok {
		t.Errorf("sender does not report the killed receiver %s as NOT delivered (not delivered: %v)", victim.id[:8], notDelivered)
	}
	if len(delivered) != 2 || len(notDelivered) != 1 {
		t.Errorf("sender reports %d delivered %v and %d not delivered %v, want 2 and 1", len(delivered), delivered, len(notDelivered), notDelivered)
	}
	t.Logf("%s to 3 receivers: one killed after %s; survivors done after %v; sender exited (%v) after %s; delivered %v; not delivered %v",
		humanize.IBytes(uint64(size)), killedAfter.Round(time.Millisecond), survivorsTook, sendErr, sendTook.Round(time.Millisecond),
		delivered, notDelivered)
}
