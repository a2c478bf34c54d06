package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"cloakroom/client/transfer"
	"cloakroom/internal/protocol"
)

// streamSize is the file size of the streaming tests:
// CLOAKROOM_STREAM_SIZE, default 96 MiB.
func streamSize(t *testing.T) int64 {
	t.Helper()
	if s := os.Getenv("CLOAKROOM_STREAM_SIZE"); s != "" {
		n, err := humanize.ParseBytes(s)
		if err != nil {
			t.Fatalf("CLOAKROOM_STREAM_SIZE=%q: %v", s, err)
		}
		return int64(n)
	}
	return 96 << 20
}

// sidecar reads the chunk bitmap of the one partial file under glob (a
// pattern for its directory): chunks held, and the length of the run of
// held chunks from chunk 0. ok is false while there is none.
func sidecar(glob string) (held, prefix int, ok bool) {
	sides, _ := filepath.Glob(filepath.Join(glob, ".cloakroom-*.have"))
	if len(sides) == 0 {
		return 0, 0, false
	}
	b, err := os.ReadFile(sides[0])
	const header = 8 + 8 + 4 + 4
	if err != nil || len(b) < header {
		return 0, 0, err == nil
	}
	inPrefix := true
	for _, x := range b[header:] {
		held += bits.OnesCount8(x)
		if inPrefix {
			n := bits.TrailingZeros8(^x)
			prefix += n
			inPrefix = n == 8
		}
	}
	return held, prefix, true
}

// lineAt reports when p first prints a line matching re (never, if it
// exits without).
func lineAt(p *proc, re *regexp.Regexp) <-chan time.Time {
	at := make(chan time.Time, 1)
	go func() {
		for {
			p.mu.Lock()
			for _, l := range p.lines {
				if re.MatchString(l) {
					p.mu.Unlock()
					at <- time.Now()
					return
				}
			}
			ch := p.notify
			p.mu.Unlock()
			select {
			case <-ch:
			case <-p.done:
				return
			}
		}
	}()
	return at
}

// streamed is what a test read from a `get -o -` child's stdout.
type streamed struct {
	n         int64
	sha       string
	first     time.Time // first byte
	mib       time.Time // 1 MiB read
	heldAtMiB int       // chunks in the receiver's bitmap then (-1: no partial file)
	err       error
}

// startGetStream starts `cloakroom get … -o - LINK NAME` with TMPDIR=tmp
// and reads its stdout through a pipe: hashing it, or (limit > 0) reading
// limit bytes and closing the pipe, like `| head -c limit`. Its stderr is
// collected as lines.
func startGetStream(t *testing.T, tmp string, limit int64, args ...string) (*proc, <-chan streamed) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"get", "-o", "-"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, notify: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start get: %v", err)
	}
	res := make(chan streamed, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go p.collect(&wg, errp, "stderr: ")
	go func() {
		defer wg.Done()
		var s streamed
		h := sha256.New()
		buf := make([]byte, 256<<10)
		s.heldAtMiB = -2
		for {
			want := buf
			if limit > 0 {
				want = buf[:min(int64(len(buf)), limit-s.n)]
			}
			n, err := out.Read(want)
			if n > 0 && s.first.IsZero() {
				s.first = time.Now()
			}
			h.Write(want[:n])
			s.n += int64(n)
			if s.n >= 1<<20 && s.mib.IsZero() {
				s.mib = time.Now()
				held, _, ok := sidecar(filepath.Join(tmp, "cloakroom-get-*"))
				if s.heldAtMiB = held; !ok {
					s.heldAtMiB = -1
				}
			}
			if limit > 0 && s.n >= limit {
				out.Close() // the reader goes away
				break
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					s.err = err
				}
				break
			}
		}
		s.sha = hex.EncodeToString(h.Sum(nil))
		res <- s
	}()
	go func() {
		wg.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of get -o -:\n%s", joinLines(p.output()))
		}
	})
	return p, res
}

func joinLines(ls []string) string {
	out := ""
	for _, l := range ls {
		out += l + "\n"
	}
	return out
}

var deliveredAnyRe = regexp.MustCompile(`delivered to [0-9a-f]{8} via`)

// TestCLIGetStream: `get -o -` of a file its origin is sending (`send`,
// one sender) writes it to stdout in order while it arrives: the bytes
// hash to the file's SHA-256, the first MiB is on stdout while the
// receiver's bitmap holds less than half the file (a get that wrote only
// at the end would have none left: its partial file is gone by then), and
// before the sender reports delivery; the private temporary directory is
// gone afterwards. Then `get -o DIR` of the same file, for the figures;
// then a reader that goes away after 1000 bytes (`| head -c 1000`): get
// exits non-zero, saying so, without hanging, and so does the sender.
func TestCLIGetStream(t *testing.T) {
	size := streamSize(t)
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	src, want := randomFile(t, t.TempDir(), size)
	chunks := int((size + protocol.ChunkSize - 1) / protocol.ChunkSize)
	timeout := 60*time.Second + time.Duration(size>>20)*time.Second/2
	waiting := regexp.MustCompile(`waiting for another member`)

	// 1. Streamed to stdout.
	a := start(t, "send", "--transport", "p2p", link, src)
	a.waitLine(t, waiting, 20*time.Second)
	delivered := lineAt(a, deliveredAnyRe)
	tmp := t.TempDir()
	began := time.Now()
	g, res := startGetStream(t, tmp, 0, "--transport", "p2p", link, "random.bin")
	if err := g.wait(t, timeout); err != nil {
		t.Fatalf("get -o -: %v", err)
	}
	ended := time.Now()
	s := <-res
	if err := a.wait(t, 30*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	var deliveredAt time.Time
	select {
	case deliveredAt = <-delivered:
	default:
		t.Fatalf("the sender printed no delivery line")
	}
	if s.err != nil || s.n != size || s.sha != want {
		t.Fatalf("stdout: %d bytes, SHA-256 %s, err %v; want %d bytes, %s", s.n, s.sha, s.err, size, want)
	}
	if s.heldAtMiB < 0 || s.heldAtMiB >= chunks/2 {
		t.Errorf("when stdout had 1 MiB the receiver's bitmap held %d of %d chunks (-1: no partial file left), want under half: not streamed", s.heldAtMiB, chunks)
	}
	if !s.mib.Before(deliveredAt) {
		t.Errorf("stdout had 1 MiB at +%s, the sender reported delivery at +%s: not streamed", s.mib.Sub(began), deliveredAt.Sub(began))
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("get -o - left %q in its temporary directory", left)
	}
	g.waitLine(t, regexp.MustCompile(`random\.bin: \d+ bytes streamed to stdout in \S+, SHA-256 verified`), time.Second)
	streamFirst, streamTotal := s.first.Sub(began), ended.Sub(began)
	t.Logf("get -o - of %s: first stdout byte after %s, 1 MiB after %s (receiver held %d of %d chunks), sender reported delivery after %s, done after %s",
		humanize.IBytes(uint64(size)), streamFirst.Round(time.Millisecond), s.mib.Sub(began).Round(time.Millisecond), s.heldAtMiB, chunks,
		deliveredAt.Sub(began).Round(time.Millisecond), streamTotal.Round(time.Millisecond))

	// 2. The same to a directory, for comparison.
	a = start(t, "send", "--transport", "p2p", link, src)
	a.waitLine(t, waiting, 20*time.Second)
	dir := t.TempDir()
	began = time.Now()
	g = start(t, "get", "--transport", "p2p", "-o", dir, link, "random.bin")
	if err := g.wait(t, timeout); err != nil {
		t.Fatalf("get -o DIR: %v", err)
	}
	dirTotal := time.Since(began)
	if got := fileSHA(t, filepath.Join(dir, "random.bin")); got != want {
		t.Fatalf("get -o DIR: SHA-256 %s, want %s", got, want)
	}
	if err := a.wait(t, 30*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	t.Logf("BENCH %s from one sending member: get -o - first byte %s, total %s; get -o DIR total %s (its file is usable only then)",
		humanize.IBytes(uint64(size)), streamFirst.Round(time.Millisecond), streamTotal.Round(time.Millisecond), dirTotal.Round(time.Millisecond))

	// 3. The reader goes away after 1000 bytes.
	a = start(t, "send", "--transport", "p2p", link, src)
	a.waitLine(t, waiting, 20*time.Second)
	tmp = t.TempDir()
	g, res = startGetStream(t, tmp, 1000, "--transport", "p2p", link, "random.bin")
	err := g.wait(t, 60*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("get -o - | head -c 1000: %v, want exit status 1", err)
	}
	if s := <-res; s.n != 1000 {
		t.Fatalf("read %d bytes, want 1000", s.n)
	}
	g.waitLine(t, regexp.MustCompile(`random\.bin: stdout was closed after \d+ of \d+ bytes \(the reader went away\); fetch cancelled`), time.Second)
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("get -o - left %q in its temporary directory", left)
	}
	// The sender is not left waiting: the receiver went away.
	if err := a.wait(t, 60*time.Second); err == nil {
		t.Errorf("send exited 0 for a receiver that cancelled")
	}
}

// TestCLIRecvSequential: `recv --sequential` joining late fetches a file
// from a member who holds it (not its origin, who left: chunks are asked
// by index, which rarest-first would pick in random order) lowest chunk
// first: every look at its partial file's bitmap mid-transfer finds the
// chunks held within a prefix plus the fetch windows, and the file is
// right at the end.
func TestCLIRecvSequential(t *testing.T) {
	size := streamSize(t)
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	src, want := randomFile(t, t.TempDir(), size)
	chunks := int((size + protocol.ChunkSize - 1) / protocol.ChunkSize)
	timeout := 60*time.Second + time.Duration(size>>20)*time.Second/2

	dirB := t.TempDir()
	b := start(t, "recv", "--transport", "p2p", "-o", dirB, link)
	b.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
	a := start(t, "send", "--transport", "p2p", link, src)
	if err := a.wait(t, timeout); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitLine(t, regexp.MustCompile(regexp.QuoteMeta(filepath.Join(dirB, "random.bin"))), 30*time.Second)

	dirC := t.TempDir()
	c := start(t, "recv", "--sequential", "--transport", "p2p", "-o", dirC, "--count", "1", link)
	type look struct{ held, prefix int }
	var looks []look
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
wait:
	for {
		select {
		case <-c.done:
			break wait
		case <-deadline:
			break wait
		case <-tick.C:
			if held, prefix, ok := sidecar(dirC); ok && held > 0 && held < chunks {
				looks = append(looks, look{held, prefix})
			}
		}
	}
	if err := c.wait(t, time.Second); err != nil {
		t.Fatalf("recv --sequential: %v", err)
	}
	if got := fileSHA(t, filepath.Join(dirC, "random.bin")); got != want {
		t.Fatalf("recv --sequential: SHA-256 %s, want %s", got, want)
	}
	if len(looks) == 0 {
		t.Fatalf("never saw the partial file mid-transfer")
	}
	slack := 2 * transfer.PeerWindow // chunks asked and arriving out of order
	for _, l := range looks {
		if l.prefix < l.held-slack {
			t.Fatalf("mid-transfer the bitmap held %d chunks of %d but only the first %d in a row: not lowest first (%d looks: %v)", l.held, chunks, l.prefix, len(looks), looks)
		}
	}
	mid := looks[len(looks)/2]
	t.Logf("recv --sequential: %d looks at the partial file mid-transfer, all a prefix within %d chunks; e.g. %d held, first %d in a row, of %d",
		len(looks), slack, mid.held, mid.prefix, chunks)
}
