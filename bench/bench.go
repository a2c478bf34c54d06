// Package bench holds Cloakroom's benchmarks (BENCHMARKS.md): a file
// through the relay, peer to peer and through TURN, each beside a baseline
// measured in the same run, and the capacity runs (idle connections,
// message fan-out) against a server child process. Every Run function
// takes a Config and writes its figures to Config.Out; the flags are the
// `cloakroom bench` command's.
package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"cloakroom/internal/store"
	"cloakroom/signaling"
)

// Defaults of the Config fields (and of the `cloakroom bench` flags).
const (
	DefaultSize     = 1 << 30               // bytes to move
	DefaultRelayMax = store.DefaultMaxBytes // relay cap of the relay benchmark's server: serve's
	DefaultConns    = 10000
	DefaultRooms    = 100
	DefaultMembers  = 10
	DefaultMsgRate  = 1
	DefaultDuration = 20 * time.Second
	DefaultPairs    = 2 // p2p, turn: bare pion pairs of the parallel baseline
)

// Config sets up a benchmark. Zero fields get the defaults above.
type Config struct {
	Out      io.Writer // where the figures go (default: discard)
	Size     int64     // relay, p2p, turn: bytes to move
	RelayMax int64     // relay: the server's relay cap
	// relay: the server's upload rates per address (signaling.Config's
	// UploadRate and UploadRateLAN: 0 default, negative no limit); the
	// command passes serve's defaults. The relay also runs with none.
	UploadRate, UploadRateLAN int64
	Croc                      string   // relay: croc executable for the croc baseline ("": croc in PATH, if any; "-": none)
	Dir                       string   // for the test file and received copies (default: a temp dir)
	CPUProfile                string   // relay, p2p, turn: write a CPU profile of the measured run here
	NATS                      []string // cluster: an existing NATS cluster (client URLs) instead of one in this process
	Pairs                     int      // p2p, turn: bare pion pairs at once in the parallel baseline

	Conns    int           // idle: WebSocket connections
	Rooms    int           // fanout: rooms
	Members  int           // idle, fanout: members per room
	MsgRate  float64       // fanout: messages per second per member
	Duration time.Duration // fanout: measured time; idle: how long the connections stay
	// Serve is the command line that starts a `cloakroom serve` child for
	// idle and fanout (default: this executable with "serve"); the
	// benchmark adds its own flags.
	Serve []string
}

func (c *Config) fill() error {
	if c.Out == nil {
		c.Out = io.Discard
	}
	c.Size = cmp.Or(c.Size, DefaultSize)
	c.RelayMax = cmp.Or(c.RelayMax, DefaultRelayMax)
	c.Conns = cmp.Or(c.Conns, DefaultConns)
	c.Rooms = cmp.Or(c.Rooms, DefaultRooms)
	c.Members = cmp.Or(c.Members, DefaultMembers)
	c.MsgRate = cmp.Or(c.MsgRate, DefaultMsgRate)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.Pairs = cmp.Or(c.Pairs, DefaultPairs)
	if len(c.Serve) == 0 {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		c.Serve = []string{self, "serve"}
	}
	if c.Size < 0 || c.RelayMax < 0 || c.Conns < 0 || c.Rooms < 0 || c.Members < 0 || c.Pairs < 0 || c.MsgRate < 0 || c.Duration < 0 {
		return fmt.Errorf("bench: negative value in %+v", *c)
	}
	return nil
}

// fileRun is the setup shared by the file benchmarks: a random source
// file of cfg.Size bytes in cfg.Dir (or a temp dir), and the CPU profile
// started once the file is written.
type fileRun struct {
	dir, src string
	cleanup  []func()
}

func newFileRun(cfg Config) (*fileRun, error) {
	r := &fileRun{dir: cfg.Dir}
	if r.dir == "" {
		d, err := os.MkdirTemp("", "cloakroom-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		r.dir = d
		r.cleanup = append(r.cleanup, func() { _ = os.RemoveAll(d) })
	}
	r.src = filepath.Join(r.dir, "bench-source.bin")
	if err := writeRandomFile(r.src, cfg.Size); err != nil {
		r.close()
		return nil, err
	}
	r.cleanup = append(r.cleanup, func() { _ = os.Remove(r.src) })
	if cfg.CPUProfile != "" {
		stop, err := startProfile(cfg.CPUProfile)
		if err != nil {
			r.close()
			return nil, err
		}
		r.cleanup = append(r.cleanup, stop)
	}
	return r, nil
}

// received is the directory for the received copies.
func (r *fileRun) received() string { return filepath.Join(r.dir, "received") }

// close undoes the setup, last step first.
func (r *fileRun) close() {
	for i := len(r.cleanup) - 1; i >= 0; i-- {
		r.cleanup[i]()
	}
}

func rate(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	// Flush it now, so its write-back does not run during the measurement
	// (a user's file to send is not freshly dirty in the page cache either).
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("bench: sync %s: %w", path, err)
	}
	return f.Close()
}

// startProfile writes a CPU profile until the returned function is called.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startSignaling runs the real signaling server (with its relay, its
// HTTP timeouts and its sweeps: Server.Run) on 127.0.0.1 until the
// returned stop is called.
func startSignaling(cfg signaling.Config) (string, func(), error) {
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := signaling.New(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = srv.Close()
		return "", nil, fmt.Errorf("bench: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Run(ctx, ln, nil)
	}()
	return "http://" + ln.Addr().String(), func() { cancel(); <-done }, nil
}

// serveHandler serves h on 127.0.0.1 until the returned stop is called.
func serveHandler(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bench: listen: %w", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), func() { _ = hs.Close(); <-done }, nil
}
