package main

// Chaos tests of the real binaries: the server is killed with SIGKILL in the
// middle of a transfer and restarted on the same address; receivers and
// senders are killed and started again. No byte may be lost or duplicated.
//
//	CLOAKROOM_CHAOS_SIZE   file size (default 256MiB: five kills fit with room,
//	                       and a relay kill re-sends 2-3 % of it, the bound
//	                       being 10 %; 512MiB before issue 16's CI time
//	                       budget, BENCHMARKS.md "CI time")
//	CLOAKROOM_CHAOS_KILLS  server kills per transfer (default 5)

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"cloakroom/internal/protocol"
)

func chaosSize(t *testing.T) int64 {
	s := os.Getenv("CLOAKROOM_CHAOS_SIZE")
	if s == "" {
		return 256 << 20
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		t.Fatalf("CLOAKROOM_CHAOS_SIZE=%q: %v", s, err)
	}
	return int64(n)
}

func chaosKills(t *testing.T) int {
	s := os.Getenv("CLOAKROOM_CHAOS_KILLS")
	if s == "" {
		return 5
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("CLOAKROOM_CHAOS_KILLS=%q: want a positive number", s)
	}
	return n
}

// heldChunks reads the chunk bitmap sidecar a receiver keeps beside its
// partial file in dir (client/resume.go): the chunks it holds on disk. It
// returns -1 when there is no partial file (not started, or finished).
func heldChunks(dir string) int {
	sides, _ := filepath.Glob(filepath.Join(dir, ".cloakroom-*.have"))
	if len(sides) == 0 {
		return -1
	}
	b, err := os.ReadFile(sides[0])
	const header = 8 + 8 + 4 + 4
	if err != nil || len(b) < header {
		return 0
	}
	n := 0
	for _, x := range b[header:] {
		n += bits.OnesCount8(x)
	}
	return n
}

// restartable is a server that can be killed and started again on the same
// HTTP and TURN ports.
type restartable struct {
	t    *testing.T
	args []string
	proc *proc
	url  string
}

func startRestartable(t *testing.T, extra ...string) *restartable {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := &restartable{t: t, args: append([]string{"serve", "--addr", addr, "--turn-port", strconv.Itoa(freePort(t))}, extra...)}
	r.start()
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := start(r.t, r.args...)
		select {
		case <-p.done: // the port may still be held for a moment by the killed one
			if time.Now().After(deadline) {
				r.t.Fatalf("server did not restart: %v\n%s", p.err, strings.Join(p.output(), "\n"))
			}
			time.Sleep(50 * time.Millisecond)
			continue
		default:
		}
		r.proc, r.url = p, p.waitLine(r.t, servingRe, 20*time.Second)[1]
		return
	}
}

func (r *restartable) kill() {
	r.t.Helper()
	r.proc.cmd.Process.Kill()
	<-r.proc.done
}

var (
	uploadRe  = regexp.MustCompile(`relay upload (\d+) bytes in (\d+) round`)
	resumedRe = regexp.MustCompile(`resumed with (\d+) of (\d+) bytes already here`)
)

// TestCLIChaosServerKill: one sender, two receivers, one file; the server is
// killed with SIGKILL at random points of the transfer and restarted on the
// same address. The clients reconnect by themselves, the room comes back, and
// both receivers end with the sender's bytes. Over the relay every restart
// loses the relay store: the sender announces the file again and uploads only
// the chunks the receivers do not hold yet; the bytes re-sent are reported.
// Peer to peer, the data channels do not need the server once connected.
func TestCLIChaosServerKill(t *testing.T) {
	for _, transport := range []string{"relay", "p2p"} {
		t.Run(transport, func(t *testing.T) { testChaosServerKill(t, transport) })
	}
}

func testChaosServerKill(t *testing.T, transport string) {
	size, kills := chaosSize(t), chaosKills(t)
	srv := startRestartable(t)
	link, _ := newRoom(t, srv.url)
	src, want := randomFile(t, t.TempDir(), size)
	chunks := int((size + protocol.ChunkSize - 1) / protocol.ChunkSize)

	dirs := []string{t.TempDir(), t.TempDir()}
	var recvs []*proc
	for _, d := range dirs {
		r := start(t, "recv", "--transport", transport, "--log-level", "info", "-o", d, "--count", "1", link)
		r.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
		recvs = append(recvs, r)
	}
	snd := start(t, "send", "--transport", transport, link, src)

	// Kill points: fractions of the file both receivers hold on disk.
	points := make([]float64, kills)
	for i := range points {
		points[i] = 0.05 + 0.85*rand.Float64()
	}
	slices.Sort(points)
	// A receiver that finished (peer to peer, one session may be ahead) has
	// no sidecar any more: it holds every chunk.
	held := func(dir string) int {
		if h := heldChunks(dir); h >= 0 {
			return h
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.Base(src))); err == nil {
			return chunks
		}
		return -1
	}
	began := time.Now()
	for i, at := range points {
		need := int(at * float64(chunks))
		deadline := time.Now().Add(3 * time.Minute)
		for {
			h0, h1 := held(dirs[0]), held(dirs[1])
			if h0 >= need && h1 >= need {
				break
			}
			select {
			case <-snd.done:
				if snd.err == nil { // both receivers done between polls: the next check breaks
					break
				}
				t.Fatalf("transfer ended (%v) before kill %d of %d (at %.0f%%); held %d, %d of %d chunks", snd.err, i+1, kills, at*100, h0, h1, chunks)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no progress to %.0f%% before kill %d: held %d, %d of %d chunks", at*100, i+1, h0, h1, chunks)
			}
			time.Sleep(10 * time.Millisecond)
		}
		srv.kill()
		t.Logf("kill %d at %.0f%% (%s)", i+1, at*100, time.Since(began).Round(time.Millisecond))
		srv.start()
	}
	timeout := 2*time.Minute + time.Duration(size>>20)*time.Second/2
	if err := snd.wait(t, timeout); err != nil {
		t.Fatalf("send: %v", err)
	}
	for i, r := range recvs {
		if err := r.wait(t, time.Minute); err != nil {
			t.Fatalf("recv %d: %v", i+1, err)
		}
		if sha := fileSHA(t, filepath.Join(dirs[i], "random.bin")); sha != want {
			t.Fatalf("recv %d: SHA-256 %s, want %s", i+1, sha, want)
		}
		if left, _ := filepath.Glob(filepath.Join(dirs[i], ".cloakroom-*")); len(left) > 0 {
			t.Errorf("recv %d left partial files: %v", i+1, left)
		}
	}
	elapsed := time.Since(began)
	if transport == "relay" {
		m := snd.waitLine(t, uploadRe, time.Second)
		uploaded, _ := strconv.ParseInt(m[1], 10, 64)
		rounds, _ := strconv.Atoi(m[2])
		resent := uploaded - size
		t.Logf("relay: %s with %d server kills in %s; uploaded %s in %d rounds, re-sent %s (%.1f%% of the file per kill)",
			humanize.IBytes(uint64(size)), kills, elapsed.Round(time.Millisecond), humanize.IBytes(uint64(uploaded)), rounds,
			humanize.IBytes(uint64(max(resent, 0))), 100*float64(resent)/float64(size)/float64(kills))
		if rounds < 2 {
			t.Errorf("sender used %d round(s) across %d server kills: the restarts did not interrupt the relay upload", rounds, kills)
		}
		// Without resume every round would start from zero; with it, a kill
		// costs what was in flight (the sender's window) and the chunks
		// uploaded before the receivers' have signals arrived.
		if resent > size*int64(kills)/10 {
			t.Errorf("re-sent %d bytes over %d kills, more than 10%% of the file per kill", resent, kills)
		}
	} else {
		direct := 0
		for _, l := range snd.output() {
			if m := deliveredRe.FindStringSubmatch(l); m != nil && m[1] == "direct" {
				direct++
			}
		}
		if direct != 2 {
			t.Errorf("sender reported %d direct deliveries, want 2:\n%s", direct, strings.Join(snd.output(), "\n"))
		}
		t.Logf("p2p: %s with %d server kills in %s", humanize.IBytes(uint64(size)), kills, elapsed.Round(time.Millisecond))
	}
}

// TestCLIRecvResume: a receiver killed with SIGKILL mid-file, and its sender
// killed too, are started again: the new receiver finds its partial file and
// chunk bitmap in -o DIR, tells the new sender what it holds, and only the
// rest crosses the relay.
func TestCLIRecvResume(t *testing.T) {
	size := int64(96 << 20)
	_, url := startServer(t, "--relay-max-bytes", "32MiB")
	link, _ := newRoom(t, url)
	src, want := randomFile(t, t.TempDir(), size)
	chunks := int((size + protocol.ChunkSize - 1) / protocol.ChunkSize)
	dir := t.TempDir()
	inRoom := regexp.MustCompile(`in the room`)

	r1 := start(t, "recv", "--transport", "relay", "-o", dir, "--count", "1", link)
	r1.waitLine(t, inRoom, 20*time.Second)
	s1 := start(t, "send", "--transport", "relay", link, src)
	deadline := time.Now().Add(2 * time.Minute)
	for heldChunks(dir) < chunks/3 {
		if time.Now().After(deadline) {
			t.Fatalf("receiver never got a third of the file: %d of %d chunks", heldChunks(dir), chunks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r1.cmd.Process.Kill()
	<-r1.done
	s1.cmd.Process.Kill()
	<-s1.done
	held := heldChunks(dir)
	if held >= chunks || held < chunks/3 {
		t.Fatalf("after the kill the bitmap says %d of %d chunks", held, chunks)
	}

	r2 := start(t, "recv", "--transport", "relay", "-o", dir, "--count", "1", link)
	r2.waitLine(t, inRoom, 20*time.Second)
	s2 := start(t, "send", "--transport", "relay", link, src)
	if err := s2.wait(t, 2*time.Minute); err != nil {
		t.Fatalf("second send: %v", err)
	}
	if err := r2.wait(t, time.Minute); err != nil {
		t.Fatalf("second recv: %v", err)
	}
	if sha := fileSHA(t, filepath.Join(dir, "random.bin")); sha != want {
		t.Fatalf("SHA-256 %s, want %s", sha, want)
	}
	m := r2.waitLine(t, resumedRe, time.Second)
	resumed, _ := strconv.ParseInt(m[1], 10, 64)
	if resumed < int64(held)*protocol.ChunkSize {
		t.Errorf("receiver resumed with %d bytes, but its bitmap held %d chunks", resumed, held)
	}
	u := s2.waitLine(t, uploadRe, time.Second)
	uploaded, _ := strconv.ParseInt(u[1], 10, 64)
	t.Logf("receiver held %d of %d chunks after SIGKILL; second send uploaded %s of %s", held, chunks,
		humanize.IBytes(uint64(uploaded)), humanize.IBytes(uint64(size)))
	if uploaded >= size {
		t.Errorf("second send uploaded %d bytes of a %d-byte file: nothing was skipped", uploaded, size)
	}
}
