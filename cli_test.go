package main

// End-to-end tests of the real binary: a server process and client
// processes talking over 127.0.0.1, as a user would run them.
//
// CLOAKROOM_E2E_SIZE sets the size of the relay transfer (default 64MiB;
// the acceptance runs use 256MiB and 1GiB).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"cloakroom/cluster/clustertest"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cloakroom-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "cloakroom")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	clustertest.Cleanup()
	os.Exit(code)
}

// proc is a running cloakroom process whose output lines can be awaited.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
	done   chan struct{}
	err    error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p, _ := startIn(t, false, args...)
	return p
}

// startIn starts a process; with stdin it also returns a pipe to its stdin.
func startIn(t *testing.T, stdin bool, args ...string) (*proc, io.WriteCloser) {
	t.Helper()
	return startCmd(t, exec.Command(binPath, args...), stdin)
}

// startCmd starts cmd (any program) as a proc whose output lines can be
// awaited; it is killed when the test ends.
func startCmd(t *testing.T, cmd *exec.Cmd, stdin bool) (*proc, io.WriteCloser) {
	t.Helper()
	args := cmd.Args
	p := &proc{cmd: cmd, notify: make(chan struct{}), done: make(chan struct{})}
	var in io.WriteCloser
	if stdin {
		in, _ = p.cmd.StdinPipe()
	}
	stdout, _ := p.cmd.StdoutPipe()
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
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
		if t.Failed() && cmd.Path == binPath {
			// A cloakroom still running when its test failed prints
			// where every goroutine stands (SIGQUIT) before it goes.
			p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, strings.Join(p.output(), "\n"))
		}
	})
	return p, in
}

func (p *proc) collect(wg *sync.WaitGroup, r io.Reader, prefix string) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, prefix+sc.Text())
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}
}

func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitLine waits for an output line matching re and returns its submatches.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		ch := p.notify
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.done:
			// Every line is collected before done closes: look once more.
			for _, l := range p.output() {
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			}
			t.Fatalf("process exited (%v) before printing %q", p.err, re)
		case <-deadline:
			t.Fatalf("no line matching %q within %s", re, timeout)
		}
	}
}

func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		// A Go process dumps its goroutines on SIGQUIT: the output logged
		// on failure then shows where it hung.
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("process %v did not exit within %s (goroutines dumped above if it is ours)", p.cmd.Args[:min(2, len(p.cmd.Args))], timeout)
		return nil
	}
}

var servingRe = regexp.MustCompile(`serving on (http://\S+)`)

func startServer(t *testing.T, extra ...string) (*proc, string) {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--turn-port", strconv.Itoa(freePort(t))}
	srv := start(t, append(args, extra...)...)
	url := srv.waitLine(t, servingRe, 20*time.Second)[1]
	return srv, url
}

func newRoom(t *testing.T, server string) (link, code string) {
	t.Helper()
	out, err := exec.Command(binPath, "new", "--server", server, "--no-qr").Output()
	if err != nil {
		t.Fatalf("cloakroom new: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], server+"/#") {
		t.Fatalf("cloakroom new printed %q, want link and mini code", out)
	}
	return lines[0], lines[1]
}

func randomFile(t *testing.T, dir string, size int64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, "random.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// vmHWM reads a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

func transferSize(t *testing.T) int64 {
	s := os.Getenv("CLOAKROOM_E2E_SIZE")
	if s == "" {
		return 64 << 20
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		t.Fatalf("CLOAKROOM_E2E_SIZE=%q: %v", s, err)
	}
	return int64(n)
}

var relayExitRe = regexp.MustCompile(`relay store at exit.* bytes=(\d+) items=(\d+)`)

// TestCLITransfer: two recv processes (one joined by link, one by mini
// code) and one send process move a random file on each forced path; both
// copies match and the sender names the path each took. Through the relay
// (capped at 64 MiB) the relay ends empty and the server's peak RSS stays
// bounded whatever the file size.
func TestCLITransfer(t *testing.T) {
	cases := []struct{ transport, path string }{
		{"relay", "relay"},
		{"p2p", "direct"},
		{"turn", "TURN-"}, // TURN-UDP or TURN-TCP: both relay candidates are gathered
	}
	for _, tc := range cases {
		t.Run(tc.transport, func(t *testing.T) { testCLITransfer(t, tc.transport, tc.path) })
	}
}

var deliveredRe = regexp.MustCompile(`delivered to [0-9a-f]{8} via (\S+)`)

func testCLITransfer(t *testing.T, transport, wantPath string) {
	size := transferSize(t)
	srv, url := startServer(t, "--relay-max-bytes", "64MiB")
	link, code := newRoom(t, url)
	src, want := randomFile(t, t.TempDir(), size)

	out1, out2 := t.TempDir(), t.TempDir()
	r1 := start(t, "recv", "--transport", transport, "-o", out1, "--count", "1", link)
	r2 := start(t, "recv", "--transport", transport, "--server", url, "-o", out2, "--count", "1", code)
	inRoom := regexp.MustCompile(`in the room`)
	r1.waitLine(t, inRoom, 20*time.Second)
	r2.waitLine(t, inRoom, 20*time.Second)

	began := time.Now()
	snd := start(t, "send", "--transport", transport, link, src)
	timeout := 60*time.Second + time.Duration(size>>20)*time.Second/4
	if err := snd.wait(t, timeout); err != nil {
		t.Fatalf("send: %v", err)
	}
	for i, r := range []*proc{r1, r2} {
		if err := r.wait(t, 30*time.Second); err != nil {
			t.Fatalf("recv %d: %v", i+1, err)
		}
	}
	elapsed := time.Since(began)
	for i, dir := range []string{out1, out2} {
		got := filepath.Join(dir, "random.bin")
		if sha := fileSHA(t, got); sha != want {
			t.Fatalf("recv %d: SHA-256 %s, want %s", i+1, sha, want)
		}
	}
	paths := 0
	for _, l := range snd.output() {
		if m := deliveredRe.FindStringSubmatch(l); m != nil {
			paths++
			if !strings.HasPrefix(m[1], wantPath) || (wantPath != "TURN-" && m[1] != wantPath) {
				t.Errorf("sender says %q, want path %s", l, wantPath)
			}
		}
	}
	if paths != 2 {
		t.Errorf("sender reported %d deliveries, want 2", paths)
	}
	hwm := vmHWM(t, srv.cmd.Process.Pid)
	t.Logf("%s via %s to 2 receivers in %s (%.0f MB/s per receiver); server VmHWM %s", humanize.IBytes(uint64(size)), transport,
		elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds(), humanize.IBytes(uint64(hwm)))
	if hwm > 160<<20 {
		t.Errorf("server peak RSS %s over 160 MiB with a 64 MiB relay cap", humanize.IBytes(uint64(hwm)))
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.wait(t, 10*time.Second); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	m := srv.waitLine(t, relayExitRe, time.Second)
	if m[1] != "0" || m[2] != "0" {
		t.Fatalf("relay store holds %s bytes in %s items after the transfer, want 0", m[1], m[2])
	}
}

// TestCLIErrors: bad input gets one clear line on stderr and a non-zero exit.
func TestCLIErrors(t *testing.T) {
	_, url := startServer(t)
	link, code := newRoom(t, url)
	typo := []byte(code)
	if typo[0] == 'A' {
		typo[0] = 'B'
	} else {
		typo[0] = 'A'
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"typo in mini code", []string{"recv", "--server", url, string(typo)}, "typo"},
		{"not a code", []string{"recv", "--server", url, "hello"}, "not a room link"},
		{"mini code without server", []string{"recv", code}, "--server"},
		{"missing file", []string{"send", link, "/nonexistent/file"}, "no such file"},
		{"unreachable server", []string{"recv", "http://127.0.0.1:1/#" + strings.SplitN(link, "#", 2)[1]}, "connect"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"bad flag", []string{"serve", "--relay-max-bytes", "lots"}, "relay-max-bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, tc.args...)
			cmd.Env = append(os.Environ(), "CLOAKROOM_SERVER=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			go func() { <-ctx.Done(); cmd.Process.Kill() }()
			err := cmd.Run()
			if err == nil {
				t.Fatalf("exit 0, want failure; stderr %q", stderr.String())
			}
			if !strings.Contains(strings.ToLower(stderr.String()), strings.ToLower(tc.want)) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestCLIChat: a line typed into one chat process appears in the other (and
// is not echoed back to its author); EOF on stdin ends the chat cleanly.
func TestCLIChat(t *testing.T) {
	_, url := startServer(t)
	link, code := newRoom(t, url)
	a, aIn := startIn(t, true, "chat", link)
	a.waitLine(t, regexp.MustCompile(`\* connected`), 20*time.Second)
	b, bIn := startIn(t, true, "chat", "--server", url, code)
	b.waitLine(t, regexp.MustCompile(`\* connected`), 20*time.Second)
	a.waitLine(t, regexp.MustCompile(`\* [0-9a-f]{8} join`), 20*time.Second)
	// b came second: it lists a, already present, as soon as it is in.
	aID := b.waitLine(t, regexp.MustCompile(`^stderr: \* ([0-9a-f]{8}) online$`), 20*time.Second)[1]
	fmt.Fprintln(aIn, "hello from a")
	b.waitLine(t, regexp.MustCompile(`^`+aID+`: hello from a$`), 20*time.Second)
	fmt.Fprintln(bIn, "hi a, b here")
	a.waitLine(t, regexp.MustCompile(`^[0-9a-f]{8}: hi a, b here$`), 20*time.Second)
	// Terminal escapes and bidi controls from another member are not
	// printed: an OSC 52 clipboard write, a line erase and cursor move, a
	// right-to-left override, a C1 CSI, bidi isolates.
	fmt.Fprintln(aIn, "\x1b]52;c;ZXZpbA==\x07clip \x1b[2K\x1b[1Aup \u202egnp.exe \u009b31mred \u2066iso\u2069")
	b.waitLine(t, regexp.MustCompile(`^`+aID+`: \]52;c;ZXZpbA==clip \[2K\[1Aup gnp\.exe 31mred iso$`), 20*time.Second)
	for _, l := range b.output() {
		if strings.ContainsAny(l, "\x1b\x07\u202e\u009b\u2066\u2069") {
			t.Fatalf("b printed a control character: %q", l)
		}
	}
	aIn.Close()
	if err := a.wait(t, 10*time.Second); err != nil {
		t.Fatalf("chat a after EOF: %v", err)
	}
	for _, l := range b.output() {
		if strings.Contains(l, "hi a, b here") {
			t.Fatalf("b saw its own message echoed: %q", l)
		}
	}
	bIn.Close()
}

// TestCLIChatReceivesFiles: every member receives a room's files; a chat
// member saves them in its working directory and says so (name, size, path),
// and neither it nor the sender prints pion's routine warnings at the
// default log level.
func TestCLIChatReceivesFiles(t *testing.T) {
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	dir := t.TempDir()
	cmd := exec.Command(binPath, "chat", link)
	cmd.Dir = dir
	chat, chatIn := startCmd(t, cmd, true)
	chat.waitLine(t, regexp.MustCompile(`\* connected`), 20*time.Second)
	src, want := randomFile(t, t.TempDir(), 3<<20+17)
	snd := start(t, "send", link, src)
	if err := snd.wait(t, 60*time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
	m := chat.waitLine(t, regexp.MustCompile(`^stderr: \* [0-9a-f]{8} sent random\.bin \((\d+) bytes\), saved as (.+)$`), 20*time.Second)
	if m[1] != strconv.Itoa(3<<20+17) {
		t.Errorf("chat reported %s bytes, want %d", m[1], 3<<20+17)
	}
	if got := filepath.Join(dir, "random.bin"); m[2] != "random.bin" && m[2] != got {
		t.Errorf("chat saved the file as %q, want random.bin in its working directory", m[2])
	}
	if got := fileSHA(t, filepath.Join(dir, "random.bin")); got != want {
		t.Errorf("saved file SHA-256 %s, want %s", got, want)
	}
	chatIn.Close()
	if err := chat.wait(t, 10*time.Second); err != nil {
		t.Fatalf("chat after EOF: %v", err)
	}
	for name, p := range map[string]*proc{"chat": chat, "send": snd} {
		for _, l := range p.output() {
			if strings.Contains(l, "pion=") {
				t.Errorf("%s printed a pion log line at the default log level: %q", name, l)
			}
		}
	}
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1 (for the
// TURN server, which listens on both), outside the ephemeral range.
func freePort(t *testing.T) int {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}
