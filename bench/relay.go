package bench

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/gorilla/websocket"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
	"cloakroom/signaling"
)

// RunRelay measures a file through the relay (sender -> server ->
// receiver, with encryption, hashing and writing to disk) with the
// server's configured upload rates (the command passes serve's defaults)
// and with no upload limit, beside the baselines from the same run: the
// same bytes through a bare gorilla/websocket forwarder of the same shape,
// croc's relay when a croc is at hand, and AES-GCM seal speed.
func RunRelay(ctx context.Context, cfg Config) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	run, err := newFileRun(cfg)
	if err != nil {
		return err
	}
	defer run.close()
	size, out := cfg.Size, cfg.Out
	fmt.Fprintf(out, "bench relay: %s file, relay cap %s, upload rate per address %s (loopback/LAN %s); sender, server and receiver share %d cores; load %s\n",
		humanize.IBytes(uint64(size)), humanize.IBytes(uint64(cfg.RelayMax)), rateName(cfg.UploadRate), rateName(cmp.Or(cfg.UploadRateLAN, cfg.UploadRate)), runtime.GOMAXPROCS(0), loadAvg())
	relayCfg := signaling.Config{Relay: store.Config{MaxBytes: cfg.RelayMax}, UploadRate: cfg.UploadRate, UploadRateLAN: cfg.UploadRateLAN}
	cpu := cpuMeter()
	relayDur, err := timeRelay(ctx, run.src, relayCfg, run.received())
	if err != nil {
		return err
	}
	relayCPU := cpu()
	relayCfg.UploadRate, relayCfg.UploadRateLAN = -1, -1
	freeDur, err := timeRelay(ctx, run.src, relayCfg, run.received())
	if err != nil {
		return err
	}
	freeCPU := cpu()
	fwdDur, err := timeForwarder(ctx, run.src)
	if err != nil {
		return err
	}
	fwdCPU := cpu()
	croc, crocDur, crocCPU := crocBaseline(ctx, cfg.Croc, run, out, cpu)
	diskDur, err := timeCopy(run.src, run.received())
	if err != nil {
		return err
	}
	gcm := aesGCMRate(min(size, 256<<20))
	relayRate, freeRate, fwdRate := rate(size, relayDur), rate(size, freeDur), rate(size, fwdDur)
	line := func(name string, r float64, note string) { fmt.Fprintf(out, "%-38s %8.1f MB/s  (%s)\n", name, r, note) }
	timed := func(d, cpu time.Duration) string {
		return fmt.Sprintf("%s, CPU %.2f s/GiB", d.Round(time.Millisecond), cpu.Seconds()*float64(1<<30)/float64(size))
	}
	line("relay, these settings", relayRate, timed(relayDur, relayCPU))
	line("relay, no upload rate limit", freeRate, timed(freeDur, freeCPU))
	line("baseline: bare websocket forwarder", fwdRate, timed(fwdDur, fwdCPU))
	if croc != "" {
		line("baseline: croc relay, --no-compress", rate(size, crocDur), timed(crocDur, crocCPU)+", "+croc)
	}
	line("baseline: copy to a new file", rate(size, diskDur), fmt.Sprintf("%s, %d-byte pwrites, what the receiver's disk does", diskDur.Round(time.Millisecond), protocol.ChunkSize))
	line("baseline: AES-256-GCM seal", gcm, fmt.Sprintf("one core, %d-byte chunks", protocol.ChunkSize))
	if croc != "" {
		fmt.Fprintf(out, "ratio relay (these settings) / croc: %.2f (issue 15: >= 2)\n", relayRate/rate(size, crocDur))
	} else {
		fmt.Fprintln(out, "croc: none (scripts/croc.sh installs it; --croc PATH)")
	}
	fmt.Fprintf(out, "ratio relay (no upload limit) / forwarder: %.2f (issue 15: >= 0.5)\nload at the end: %s\n", freeRate/fwdRate, loadAvg())
	return nil
}

// crocBaseline times croc's relay on the run's file when a croc is at
// hand (path "" when none is, or when it failed: the other figures still
// stand, and out says why).
func crocBaseline(ctx context.Context, want string, run *fileRun, out io.Writer, cpu func() time.Duration) (path string, d, used time.Duration) {
	croc := findCroc(want)
	if croc == "" {
		return "", 0, 0
	}
	d, err := timeCroc(ctx, croc, run.src, run.received())
	used = cpu()
	if err != nil {
		fmt.Fprintf(out, "croc baseline failed: %v\n", err)
		return "", 0, 0
	}
	return croc, d, used
}

// cpuMeter returns a function that returns the CPU time (user and
// system) this process and its waited-for children used since the last
// call: a figure that, unlike MB/s, the other loads of a shared machine
// barely change.
func cpuMeter() func() time.Duration {
	used := func() time.Duration {
		var self, kids syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
		var d time.Duration
		for _, tv := range []syscall.Timeval{self.Utime, self.Stime, kids.Utime, kids.Stime} {
			d += time.Duration(tv.Nano())
		}
		return d
	}
	last := used()
	return func() time.Duration {
		now := used()
		d := now - last
		last = now
		return d
	}
}

// rateName names an upload rate of signaling.Config.
func rateName(r int64) string {
	if r <= 0 {
		return "none"
	}
	return humanize.IBytes(uint64(r)) + "/s"
}

// loadAvg is the 1, 5 and 15 minute load averages, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func timeRelay(ctx context.Context, src string, sigCfg signaling.Config, outDir string) (time.Duration, error) {
	url, stop, err := startSignaling(sigCfg)
	if err != nil {
		return 0, err
	}
	defer stop()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(outDir)
	secret, err := crypto.NewSecret()
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	link := secret.Link(url)
	var mark int64
	var last time.Time
	t0 := time.Now()
	trace := os.Getenv("BENCH_TRACE") != ""
	recv, err := client.Dial(ctx, link, client.Options{Dir: outDir, OnProgress: func(p client.Progress) {
		if trace && p.Bytes >= mark {
			now := time.Now()
			fmt.Fprintf(os.Stderr, "%4d MiB at %v", p.Bytes>>20, now.Sub(t0).Round(time.Millisecond))
			if !last.IsZero() {
				fmt.Fprintf(os.Stderr, " (%.0f MB/s)", rate(128<<20, now.Sub(last)))
			}
			fmt.Fprintln(os.Stderr)
			last = now
			mark += 128 << 20
		}
	}})
	if err != nil {
		return 0, fmt.Errorf("bench: receiver: %w", err)
	}
	defer recv.Close()
	return timeSend(ctx, link, recv, src)
}

// timeSend joins link as a relay sender, sends src and waits until recv
// has it; it returns the time from the send to the receipt.
func timeSend(ctx context.Context, link string, recv *client.Client, src string) (time.Duration, error) {
	send, err := client.Dial(ctx, link, client.Options{Transport: protocol.TransportRelay})
	if err != nil {
		return 0, fmt.Errorf("bench: sender: %w", err)
	}
	defer send.Close()
	start := time.Now()
	if _, err := send.SendFile(ctx, src); err != nil {
		return 0, fmt.Errorf("bench: relay transfer: %w", err)
	}
	f, err := recv.NextFile(ctx)
	if err != nil || f.Err != nil {
		return 0, fmt.Errorf("bench: receive: %w", errors.Join(err, f.Err))
	}
	return time.Since(start), nil
}

// timeCopy copies src into a new file in dir in chunk-sized reads and
// writes, as the sender reads and the receiver writes (on these virtual
// machines, memory the page cache has not used lately is slow to touch the
// first time; see BENCHMARKS.md).
func timeCopy(src, dir string) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, "copy.bin"))
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer out.Close()
	buf := make([]byte, protocol.ChunkSize)
	start := time.Now()
	for off := int64(0); ; off += int64(len(buf)) {
		n, rerr := in.ReadAt(buf, off)
		if _, err := out.WriteAt(buf[:n], off); err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
		if rerr == io.EOF {
			break
		} else if rerr != nil {
			return 0, fmt.Errorf("bench: %w", rerr)
		}
	}
	return time.Since(start), nil
}

// timeForwarder moves the file's bytes in 64 KiB messages from one
// WebSocket client through a server to another client, with no crypto.
func timeForwarder(ctx context.Context, src string) (time.Duration, error) {
	up := websocket.Upgrader{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	// The sender dials "?send": the two upgrades may finish in either order.
	senders, receivers := make(chan *websocket.Conn, 1), make(chan *websocket.Conn, 1)
	url, stop, err := serveHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r, nil); err == nil && r.URL.RawQuery == "send" {
			senders <- c
		} else if err == nil {
			receivers <- c
		}
	}))
	if err != nil {
		return 0, err
	}
	defer stop()
	fctx, cancel := context.WithCancel(ctx)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		forward(fctx, senders, receivers)
	}()
	defer func() { cancel(); <-forwarded }() // after the clients below close
	d := websocket.Dialer{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	wsURL := "ws" + url[len("http"):]
	sender, _, err := d.DialContext(ctx, wsURL+"?send", nil)
	if err != nil {
		return 0, fmt.Errorf("bench: forwarder: %w", err)
	}
	defer sender.Close()
	receiver, _, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		return 0, fmt.Errorf("bench: forwarder: %w", err)
	}
	defer receiver.Close()
	f, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	st, _ := f.Stat()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- drain(receiver, st.Size()) }()
	if err := sendMessages(sender, f); err != nil {
		return 0, err
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sendMessages writes r to c in chunk-sized binary messages.
func sendMessages(c *websocket.Conn, r io.Reader) error {
	buf := make([]byte, protocol.ChunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := c.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
				return fmt.Errorf("bench: forwarder write: %w", werr)
			}
		}
		if err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
}

// forward pairs a sender and a receiver and copies messages from the
// first to the second, one reader and one writer, like the relay's shape,
// until either closes (or ctx ends before they both arrive).
func forward(ctx context.Context, senders, receivers chan *websocket.Conn) {
	var a, b *websocket.Conn
	for a == nil || b == nil {
		select {
		case a = <-senders:
			defer a.Close()
		case b = <-receivers:
			defer b.Close()
		case <-ctx.Done():
			return
		}
	}
	for {
		kind, r, err := a.NextReader()
		if err != nil {
			return
		}
		w, err := b.NextWriter(kind)
		if err != nil {
			return
		}
		if _, err := io.Copy(w, r); err != nil {
			return
		}
		if err := w.Close(); err != nil {
			return
		}
	}
}

func drain(c *websocket.Conn, want int64) error {
	var got int64
	for got < want {
		_, r, err := c.NextReader()
		if err != nil {
			return fmt.Errorf("bench: forwarder read: %w", err)
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return fmt.Errorf("bench: forwarder read: %w", err)
		}
		got += n
	}
	return nil
}

// aesGCMRate returns AES-256-GCM seal speed in MB/s on one goroutine.
func aesGCMRate(total int64) float64 {
	key := make([]byte, 32)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	plain := make([]byte, protocol.ChunkSize)
	out := make([]byte, 0, len(plain)+16)
	nonce := make([]byte, 12)
	start := time.Now()
	var done int64
	for done < total {
		out = aead.Seal(out[:0], nonce, plain, nil)
		nonce[0]++
		done += int64(len(plain))
	}
	return rate(done, time.Since(start))
}
