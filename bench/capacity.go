package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// Capacity benchmarks (issue 6): the server runs as a child process (so its
// memory is its own), the clients in this process speak the wire protocol
// without crypto (the server never sees any), all on 127.0.0.1.

// serverChild is a `cloakroom serve` child process.
type serverChild struct {
	cmd *exec.Cmd
	url string
}

var childServingRe = regexp.MustCompile(`serving on (http://\S+)`)

// startServerChild starts the serve command line on a free port with the
// given extra flags and waits until it serves.
func startServerChild(ctx context.Context, serve []string, extra ...string) (*serverChild, error) {
	args := append([]string{"--addr", "127.0.0.1:0", "--turn-port", "0", "--metrics-addr", "", "--log-level", "warn"}, extra...)
	cmd := exec.CommandContext(ctx, serve[0], append(serve[1:len(serve):len(serve)], args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start server: %w", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := childServingRe.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, out) }() // ends when the child exits
			return &serverChild{cmd: cmd, url: m[1]}, nil
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("bench: the server exited before serving")
}

func (s *serverChild) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
}

// procStatus returns a field of /proc/PID/status in bytes (kB fields).
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procCPU returns the user+system CPU time of pid.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// raiseFileLimit lifts the soft limit on open files to the hard limit.
func raiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}

// benchClient is one raw protocol client.
type benchClient struct {
	ws    *websocket.Conn
	id    string
	node  byte       // bench cluster: the node it is connected to (sent in its messages)
	cross *latencies // bench cluster: where deliveries from another node are recorded too
	mu    sync.Mutex // one writer at a time
}

func (c *benchClient) write(m *protocol.Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

var benchDialer = &websocket.Dialer{HandshakeTimeout: 30 * time.Second}

// joinRoom dials and joins room (id, verifier) and waits for the welcome.
func joinBenchRoom(ctx context.Context, url string, room [2]string) (*benchClient, error) {
	ws, _, err := benchDialer.DialContext(ctx, benchWSURL(url), nil)
	if err != nil {
		return nil, err
	}
	c := &benchClient{ws: ws, id: uuid.NewString()}
	err = c.write(&protocol.Message{Type: protocol.TypeJoin, V: protocol.Version, Room: room[0], Verifier: room[1],
		Member: c.id, Pub: benchB64(protocol.PubLen), MAC: benchB64(protocol.MACLen)})
	if err == nil {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		var m *protocol.Message
		if m, err = benchRead(ws); err == nil && m.Type != protocol.TypeWelcome {
			err = fmt.Errorf("join: got %s %s %s", m.Type, m.Code, m.Error)
		}
		_ = ws.SetReadDeadline(time.Time{})
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

func benchWSURL(server string) string { return "ws" + strings.TrimPrefix(server, "http") + "/ws" }

func benchRead(ws *websocket.Conn) (*protocol.Message, error) {
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		if mt == websocket.TextMessage {
			return protocol.Decode(data)
		}
	}
}

func benchB64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return protocol.EncodeB64(b)
}

func benchRoom() [2]string {
	return [2]string{benchB64(protocol.RoomIDLen), benchB64(protocol.VerifierLen)}
}

// dialAll joins n clients, members per room, 64 dials at a time.
func benchDialAll(ctx context.Context, url string, n, members int) ([]*benchClient, error) {
	return benchDialNodes(ctx, []string{url}, n, members)
}

// benchDialNodes is benchDialAll with client i on node i mod len(urls): the
// members of a room spread over the nodes.
func benchDialNodes(ctx context.Context, urls []string, n, members int) ([]*benchClient, error) {
	rooms := make([][2]string, (n+members-1)/members)
	for i := range rooms {
		rooms[i] = benchRoom()
	}
	clients := make([]*benchClient, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				c, err := joinBenchRoom(ctx, urls[i%len(urls)], rooms[i/members])
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				c.node = byte(i % len(urls))
				clients[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		benchCloseAll(clients)
		return nil, err
	}
	return clients, nil
}

func benchCloseAll(clients []*benchClient) {
	for _, c := range clients {
		if c != nil {
			c.ws.Close()
		}
	}
}

// RunIdle: Config.Conns idle joined WebSocket connections; the server's
// RSS beside its RSS before they joined.
func RunIdle(ctx context.Context, cfg Config) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	f, stdout := cfg, cfg.Out
	limit := raiseFileLimit()
	srv, err := startServerChild(ctx, cfg.Serve, "--max-conns", strconv.Itoa(f.Conns+100), "--max-conns-per-ip", "-1",
		"--join-rate", "-1", "--max-rooms", strconv.Itoa(f.Conns))
	if err != nil {
		return err
	}
	defer srv.stop()
	pid := srv.cmd.Process.Pid
	base := procStatus(pid, "VmRSS")
	fmt.Fprintf(stdout, "bench idle: %d connections (%d per room) to a server child process on 127.0.0.1; open files limit %d\n", f.Conns, f.Members, limit)
	start := time.Now()
	clients, err := benchDialAll(ctx, srv.url, f.Conns, f.Members)
	if err != nil {
		return err
	}
	defer benchCloseAll(clients)
	joined := time.Since(start)
	wg := startReaders(clients)
	defer wg.Wait()
	defer benchCloseAll(clients) // runs before wg.Wait: ends the readers
	var peak int64
	for end := time.Now().Add(f.Duration); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		peak = max(peak, procStatus(pid, "VmRSS"))
	}
	hwm := procStatus(pid, "VmHWM")
	fmt.Fprintf(stdout, "joined in %s; server RSS %.1f MiB before, %.1f MiB with %d idle members (peak %.1f MiB): %.1f KiB per connection\n",
		joined.Round(time.Millisecond), mib(base), mib(peak), f.Conns, mib(hwm), float64(peak-base)/1024/float64(f.Conns))
	fmt.Fprintf(stdout, "this process (clients): RSS %.1f MiB\n", mib(procStatus(os.Getpid(), "VmRSS")))
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// startReaders reads (and drops) what each client gets, answering pings,
// until its connection closes; wait on the group after closing them.
func startReaders(clients []*benchClient) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	return &wg
}
