package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/gorilla/websocket"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
	"cloakroom/signaling"
)

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	sizeFlag := fs.String("size", "1GiB", "bytes to move")
	relayMax := fs.String("relay-max-bytes", "64MiB", "relay store cap of the benchmark server")
	dir := fs.String("dir", "", "directory for the test file and received copies (default: a temp dir)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	var capf capacityFlags
	fs.IntVar(&capf.conns, "conns", 10000, "bench idle: WebSocket connections")
	fs.IntVar(&capf.rooms, "rooms", 100, "bench fanout: rooms")
	fs.IntVar(&capf.members, "members", 10, "bench idle, fanout: members per room")
	fs.Float64Var(&capf.msgRate, "msg-rate", 1, "bench fanout: messages per second per member")
	fs.DurationVar(&capf.duration, "duration", 20*time.Second, "bench fanout: measured time; bench idle: how long the connections stay")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "idle":
		return benchIdle(ctx, capf, stdout)
	case fs.NArg() == 1 && fs.Arg(0) == "fanout":
		return benchFanout(ctx, capf, stdout)
	case fs.NArg() != 1 || (fs.Arg(0) != "relay" && fs.Arg(0) != "p2p" && fs.Arg(0) != "turn"):
		return usagef("bench: want `bench relay`, `bench p2p`, `bench turn`, `bench idle` or `bench fanout`")
	}
	size, err := humanize.ParseBytes(*sizeFlag)
	if err != nil || size == 0 {
		return usagef("bench: --size %q: want a size like 1GiB", *sizeFlag)
	}
	capBytes, err := humanize.ParseBytes(*relayMax)
	if err != nil || capBytes == 0 {
		return usagef("bench: --relay-max-bytes %q: want a size like 64MiB", *relayMax)
	}
	if fs.Arg(0) != "relay" {
		if *cpuProfile != "" {
			stop, err := startProfile(*cpuProfile)
			if err != nil {
				return err
			}
			defer stop()
		}
		return benchP2P(ctx, int64(size), fs.Arg(0), *dir, stdout)
	}
	return benchRelay(ctx, int64(size), int64(capBytes), *dir, *cpuProfile, stdout)
}

// benchRelay measures a file through the relay (sender -> server ->
// receiver, with encryption, hashing and writing to disk) beside two
// baselines from the same run: the same bytes through a bare
// gorilla/websocket forwarder of the same shape, and AES-GCM seal speed.
func benchRelay(ctx context.Context, size, relayCap int64, dir, cpuProfile string, stdout io.Writer) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "cloakroom-bench-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	src := filepath.Join(dir, "bench-source.bin")
	if err := writeRandomFile(src, size); err != nil {
		return err
	}
	defer os.Remove(src)
	if cpuProfile != "" {
		stop, err := startProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintf(stdout, "bench relay: %s file, relay cap %s, GOMAXPROCS cores shared by sender, server and receiver\n",
		humanize.IBytes(uint64(size)), humanize.IBytes(uint64(relayCap)))
	relayDur, err := timeRelay(ctx, src, relayCap, filepath.Join(dir, "received"))
	if err != nil {
		return err
	}
	fwdDur, err := timeForwarder(ctx, src)
	if err != nil {
		return err
	}
	gcm := aesGCMRate(min(size, 256<<20))
	relayRate, fwdRate := rate(size, relayDur), rate(size, fwdDur)
	fmt.Fprintf(stdout, "%-34s %8.1f MB/s  (%s)\n", "relay (seal+hash+disk, 1 receiver)", relayRate, relayDur.Round(time.Millisecond))
	fmt.Fprintf(stdout, "%-34s %8.1f MB/s  (%s)\n", "baseline: bare websocket forwarder", fwdRate, fwdDur.Round(time.Millisecond))
	fmt.Fprintf(stdout, "%-34s %8.1f MB/s  (one core, %d-byte chunks)\n", "baseline: AES-256-GCM seal", gcm, protocol.ChunkSize)
	fmt.Fprintf(stdout, "ratio relay / forwarder: %.2f\n", relayRate/fwdRate)
	return nil
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

// benchServer runs the real signaling server on 127.0.0.1 until ctx ends.
func benchServer(ctx context.Context, relayCap int64) (string, func(), error) {
	var srv *signaling.Server
	st, err := store.New(store.Config{MaxBytes: relayCap, OnEvict: func(it store.Item, m []string) { srv.OnEvict(it, m) }})
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	srv, err = signaling.New(signaling.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	url, stop, err := serveHandler(srv.Handler())
	if err != nil {
		return "", nil, err
	}
	return url, func() { srv.Close(); stop(); st.Close() }, nil
}

func serveHandler(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bench: listen: %w", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), func() { hs.Close() }, nil
}

func timeRelay(ctx context.Context, src string, relayCap int64, outDir string) (time.Duration, error) {
	url, stop, err := benchServer(ctx, relayCap)
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
	t0 := time.Now()
	recv, err := client.Dial(ctx, link, client.Options{Dir: outDir, OnProgress: func(p client.Progress) {
		if os.Getenv("BENCH_TRACE") != "" && p.Bytes >= mark {
			fmt.Fprintf(os.Stderr, "%4d MiB at %v\n", p.Bytes>>20, time.Since(t0).Round(time.Millisecond))
			mark += 128 << 20
		}
	}})
	if err != nil {
		return 0, fmt.Errorf("bench: receiver: %w", err)
	}
	defer recv.Close()
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
	go forward(senders, receivers)
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
	buf := make([]byte, protocol.ChunkSize)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if werr := sender.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
				return 0, fmt.Errorf("bench: forwarder write: %w", werr)
			}
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// forward pairs a sender and a receiver and copies messages from the
// first to the second, one reader and one writer, like the relay's shape.
func forward(senders, receivers chan *websocket.Conn) {
	a, b := <-senders, <-receivers
	defer a.Close()
	defer b.Close()
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
