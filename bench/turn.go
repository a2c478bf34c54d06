package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/webrtc/v4"

	"cloakroom/client"
	"cloakroom/internal/auth"
	"cloakroom/turn"
)

// benchSecret is the TURN REST secret of the benchmark's TURN servers.
const benchSecret = "bench-secret"

// RunTURN measures a file sent through the embedded TURN server beside the
// same client on the direct path in the same run (issue 15's acceptance
// ratio, TURN / direct), and raw pion relayed by the embedded server, sent
// directly, and, when coturn's turnserver is installed, relayed by coturn.
// Each line has the process's CPU time per MB (the TURN server runs in the
// process; coturn's own CPU is added to its line) and the datagrams dropped
// during that phase: by the kernel on a full UDP receive buffer (the whole
// machine's count) and by the embedded server on a full relay queue.
func RunTURN(ctx context.Context, cfg Config) error {
	run, ts, closeAll, err := newPeerRun(&cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	size, out := cfg.Size, cfg.Out
	fmt.Fprintf(out, "bench turn: %d MiB file, sender, receiver and TURN server in one process on 127.0.0.1\n", size>>20)
	fmt.Fprintf(out, "%-38s %8s %9s %10s %7s %7s\n", "", "MB/s", "time", "CPU ms/MB", "drops", "qdrops")

	m := meter{ts: ts}
	var direct, relayed phase
	direct, err = m.measure("direct", size, func() (time.Duration, string, error) {
		d, _, path, err := timeP2P(ctx, ts, run.src, "p2p", run.received(), cfg.Pairs)
		return d, path, err
	})
	if err != nil {
		return err
	}
	direct.print(out, "cloakroom direct (seal+hash+disk)")
	relayed, err = m.measure("turn", size, func() (time.Duration, string, error) {
		d, _, path, err := timeP2P(ctx, ts, run.src, "turn", run.received(), cfg.Pairs)
		return d, path, err
	})
	if err != nil {
		return err
	}
	relayed.print(out, "cloakroom TURN (seal+hash+disk)")
	rawTURN, err := m.measure("raw-turn", size, func() (time.Duration, string, error) {
		d, _, err := timeRawPion(ctx, ts, size, "turn", 1)
		return d, "embedded TURN, UDP", err
	})
	if err != nil {
		return err
	}
	rawTURN.print(out, "raw pion, TURN")
	rawDirect, err := m.measure("raw-direct", size, func() (time.Duration, string, error) {
		d, _, err := timeRawPion(ctx, ts, size, "p2p", 1)
		return d, "direct", err
	})
	if err != nil {
		return err
	}
	rawDirect.print(out, "raw pion, direct")
	coturn, err := coturnPhase(ctx, m, size, out)
	if err != nil {
		return err
	}
	turnRatios(out, direct, relayed, rawTURN, rawDirect, coturn)
	return nil
}

// coturnPhase is raw pion through coturn, printed; nil when coturn's
// turnserver is not installed (out says so).
func coturnPhase(ctx context.Context, m meter, size int64, out io.Writer) (*phase, error) {
	co, err := measureCoturn(ctx, m, size)
	switch {
	case errors.Is(err, exec.ErrNotFound):
		fmt.Fprintln(out, "raw pion, coturn: turnserver not installed (apt-get install coturn)")
		return nil, nil
	case err != nil:
		return nil, err
	}
	co.print(out, "raw pion, coturn")
	return &co, nil
}

// turnRatios prints bench turn's ratios (coturn's when it ran).
func turnRatios(out io.Writer, direct, relayed, rawTURN, rawDirect phase, coturn *phase) {
	fmt.Fprintf(out, "ratio cloakroom TURN / cloakroom direct: %.2f (acceptance: >= 0.80)\n", relayed.rate/direct.rate)
	fmt.Fprintf(out, "ratio cloakroom TURN / raw pion TURN:    %.2f\n", relayed.rate/rawTURN.rate)
	fmt.Fprintf(out, "ratio raw pion TURN / raw pion direct:   %.2f\n", rawTURN.rate/rawDirect.rate)
	if coturn != nil {
		fmt.Fprintf(out, "ratio raw pion TURN / raw pion coturn:   %.2f\n", rawTURN.rate/coturn.rate)
	}
}

// phase is one measured transfer.
type phase struct {
	rate       float64       // MB/s
	took       time.Duration // wall time
	cpu        time.Duration // CPU time of the process (and of coturn) meanwhile
	size       int64
	drops      int64  // UDP receive-buffer errors on the machine meanwhile (-1: unknown)
	queueDrops uint64 // datagrams the embedded TURN server dropped on a full relay queue
	path       string
}

func (p phase) print(out io.Writer, name string) {
	fmt.Fprintf(out, "%-38s %8.1f %9s %10.1f %7d %7d  (%s)\n", name, p.rate, p.took.Round(time.Millisecond),
		float64(p.cpu.Microseconds())/1e3/(float64(p.size)/1e6), p.drops, p.queueDrops, p.path)
}

// meter measures phases; ts is the embedded TURN server.
type meter struct{ ts *turn.Server }

// measure runs f (labelled name in CPU profiles) and records its wall time,
// the process's CPU time and the drops meanwhile.
func (m meter) measure(name string, size int64, f func() (time.Duration, string, error)) (phase, error) {
	cpu0, drops0, queue0 := cpuTime(), udpRcvbufErrors(), m.ts.Stats().RelayDropped
	var took time.Duration
	var path string
	var err error
	// Goroutines started by f carry the label: `go tool pprof -tagfocus
	// phase=...` shows one phase of a --cpuprofile.
	pprof.Do(context.Background(), pprof.Labels("phase", name), func(context.Context) { took, path, err = f() })
	if err != nil {
		return phase{}, err
	}
	p := phase{rate: rate(size, took), took: took, cpu: cpuTime() - cpu0, size: size, drops: -1,
		queueDrops: m.ts.Stats().RelayDropped - queue0, path: path}
	if drops1 := udpRcvbufErrors(); drops0 >= 0 && drops1 >= 0 {
		p.drops = drops1 - drops0
	}
	return p, nil
}

// cpuTime is the CPU time (user and system) of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// udpRcvbufErrors reads Udp RcvbufErrors from /proc/net/snmp (-1 if absent).
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(fields) {
				v, err := strconv.ParseInt(fields[i], 10, 64)
				if err != nil {
					return -1
				}
				return v
			}
		}
	}
	return -1
}

// measureCoturn times raw pion relayed by a coturn child process
// (exec.ErrNotFound when turnserver is not installed); coturn's CPU time
// is added to the phase's.
func measureCoturn(ctx context.Context, m meter, size int64) (phase, error) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		return phase{}, err
	}
	port, err := freeUDPPort()
	if err != nil {
		return phase{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-n", "--no-cli", "--no-tls", "--no-dtls",
		"-L", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", strconv.Itoa(port),
		"--use-auth-secret", "--static-auth-secret", benchSecret, "--realm", "cloakroom",
		"--allow-loopback-peers", "--log-file", "stdout", "--no-stun-backward-compatibility")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return phase{}, fmt.Errorf("bench: coturn: %w", err)
	}
	waited := false
	defer func() {
		if !waited {
			cancel()
			_ = cmd.Wait()
		}
	}()
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	if err := awaitSTUN(ctx, addr); err != nil {
		return phase{}, fmt.Errorf("bench: coturn: %w", err)
	}
	u, p := auth.MintTURN([]byte(benchSecret), "raw", time.Hour, time.Now())
	ice := webrtc.ICEServer{URLs: []string{"turn:" + addr.String() + "?transport=udp"}, Username: u, Credential: p}
	ph, err := m.measure("raw-coturn", size, func() (time.Duration, string, error) {
		d, err := timeRawRelayed(ctx, ice, size)
		return d, "coturn, UDP", err
	})
	cancel()
	_ = cmd.Wait() // ends on SIGTERM: its exit status is not interesting
	waited = true
	if err != nil {
		return phase{}, err
	}
	if st := cmd.ProcessState; st != nil {
		ph.cpu += st.UserTime() + st.SystemTime()
	}
	return ph, nil
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// awaitSTUN waits until a STUN server answers a Binding request at addr.
func awaitSTUN(ctx context.Context, addr *net.UDPAddr) error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer c.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	buf := make([]byte, 1500)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := c.WriteToUDP(req, addr); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := c.ReadFromUDP(buf); err == nil && stun.IsMessage(buf[:n]) {
			return nil
		}
	}
	return fmt.Errorf("no STUN answer from %s", addr)
}

// timeRawRelayed is timeRawPion's TURN mode through any TURN server.
func timeRawRelayed(ctx context.Context, ice webrtc.ICEServer, size int64) (time.Duration, error) {
	api := client.NewWebRTCAPI(nil)
	cfg := webrtc.Configuration{ICEServers: []webrtc.ICEServer{ice}, ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	a, err := api.NewPeerConnection(cfg)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	b, err := api.NewPeerConnection(cfg)
	if err != nil {
		_ = a.Close()
		return 0, fmt.Errorf("bench: %w", err)
	}
	return timeRawPair(ctx, a, b, size)
}
