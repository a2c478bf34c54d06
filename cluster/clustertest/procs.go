package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is one NATS server run as its own OS process (natsd
// -cluster-port), so that a test can SIGKILL it.
type Process struct {
	Name    string // nats-1…
	URL     string // client URL, nats://127.0.0.1:PORT
	Monitor string // monitoring URL, http://127.0.0.1:PORT

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{} // closed when the process has exited and its output is read
	mu     sync.Mutex
	output []string // stdout and stderr lines
}

// Processes is a NATS cluster of OS processes.
type Processes struct {
	Procs []*Process
	URLs  []string // client URLs, one per server
}

// URL is every server's client URL, comma-separated (--cluster's form).
func (c *Processes) URL() string { return strings.Join(c.URLs, ",") }

var natsd struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// natsdBinary builds natsd once per test binary run.
func natsdBinary() (string, error) {
	natsd.once.Do(func() {
		natsd.dir, natsd.err = os.MkdirTemp("", "clustertest-natsd-")
		if natsd.err != nil {
			return
		}
		natsd.path = natsd.dir + "/natsd"
		out, err := exec.Command("go", "build", "-o", natsd.path, "cloakroom/cluster/clustertest/natsd").CombinedOutput()
		if err != nil {
			natsd.err = fmt.Errorf("go build natsd: %w\n%s", err, out)
		}
	})
	return natsd.path, natsd.err
}

// Cleanup removes the natsd binary StartProcesses built (call it from
// TestMain once the tests have run).
func Cleanup() {
	if natsd.dir != "" {
		_ = os.RemoveAll(natsd.dir)
	}
}

// StartProcesses starts n NATS servers with JetStream, each its own OS
// process, routed into one cluster, and waits until every one is routed to
// the others and JetStream has a meta leader. They are killed when t ends.
func StartProcesses(t testing.TB, n int) *Processes {
	t.Helper()
	bin, err := natsdBinary()
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		c, err := startProcesses(t, bin, n)
		if err == nil {
			return c
		}
		for _, p := range c.Procs {
			_ = p.Kill()
		}
		// A route port is picked before natsd binds it; another program
		// may take it in between. Only that is worth another try.
		if !errors.Is(err, ErrRoutePortBusy) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("NATS cluster attempt %d: %v; again with other ports", attempt, err)
	}
}

func startProcesses(t testing.TB, bin string, n int) (*Processes, error) {
	ports := make([]string, n)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return &Processes{}, err
		}
		ports[i] = "nats-route://127.0.0.1:" + strconv.Itoa(p)
	}
	c := &Processes{}
	for i := range n {
		port := strings.TrimPrefix(ports[i], "nats-route://127.0.0.1:")
		p, err := startProcess(t, bin, "-name", fmt.Sprintf("nats-%d", i+1), "-cluster-port", port,
			"-routes", strings.Join(ports, ","), "-peers", strconv.Itoa(n), "-store", t.TempDir())
		if err != nil {
			return c, err
		}
		c.Procs = append(c.Procs, p)
	}
	for _, p := range c.Procs {
		if err := p.waitReady(readyWait + 10*time.Second); err != nil {
			return c, err
		}
		c.URLs = append(c.URLs, p.URL)
	}
	return c, nil
}

var readyRe = regexp.MustCompile(`^nats: (nats://\S+) monitor: (http://\S+)$`)

// startProcess starts natsd; it is killed when t ends (its output logged
// if t failed).
func startProcess(t testing.TB, bin string, args ...string) (*Process, error) {
	p := &Process{Name: args[1], cmd: exec.Command(bin, args...), done: make(chan struct{})}
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil { // natsd ends when stdin closes: also when this process dies
		return nil, fmt.Errorf("natsd stdin: %w", err)
	}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start natsd: %w", err)
	}
	go p.collect(pr)
	go func() {
		_ = p.cmd.Wait()
		_ = pw.Close()
	}()
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.Name, strings.Join(p.lines(), "\n"))
		}
	})
	return p, nil
}

func (p *Process) collect(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.output = append(p.output, sc.Text())
		p.mu.Unlock()
	}
}

func (p *Process) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.output...)
}

// waitReady waits for natsd's ready line and takes its URLs from it.
func (p *Process) waitReady(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		for _, l := range p.lines() {
			if m := readyRe.FindStringSubmatch(l); m != nil {
				p.URL, p.Monitor = m[1], m[2]
				return nil
			}
		}
		select {
		case <-p.done:
			err := fmt.Errorf("natsd %s exited before it was ready: %q", p.Name, p.lines())
			if slices.ContainsFunc(p.lines(), func(l string) bool { return strings.Contains(l, ErrRoutePortBusy.Error()) }) {
				err = fmt.Errorf("%w: %w", ErrRoutePortBusy, err)
			}
			return err
		case <-deadline:
			return fmt.Errorf("natsd %s not ready within %s: %q", p.Name, timeout, p.lines())
		case <-time.After(20 * time.Millisecond): // lines come from the pipe; polling keeps this simple
		}
	}
}

// Kill sends SIGKILL and waits until the process has exited; it may be
// called again.
func (p *Process) Kill() error {
	err := p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.stdin.Close()
	<-p.done
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.Name, err)
	}
	return nil
}

// Clients returns the names of the client connections open on the server
// (its /connz): a cloakroom node connects as "cloakroom NODE-ID".
func (p *Process) Clients(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Monitor+"/connz?limit=1000", nil)
	if err != nil {
		return nil, fmt.Errorf("connz %s: %w", p.Name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("connz %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	var cz struct {
		Conns []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cz); err != nil {
		return nil, fmt.Errorf("connz %s: %w", p.Name, err)
	}
	names := make([]string, 0, len(cz.Conns))
	for _, c := range cz.Conns {
		names = append(names, c.Name)
	}
	return names, nil
}
