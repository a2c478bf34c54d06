package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pion/webrtc/v4"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
	"cloakroom/signaling"
	"cloakroom/turn"
)

// RunP2P measures a file sent over a direct data channel beside raw pion
// data-channel throughput over the same path in the same run.
func RunP2P(ctx context.Context, cfg Config) error { return runPeer(ctx, cfg, "p2p") }

// newPeerRun is the setup of the peer benchmarks: the file run and an
// embedded TURN server on 127.0.0.1; close undoes both.
func newPeerRun(cfg *Config) (run *fileRun, ts *turn.Server, closeAll func(), err error) {
	if err := cfg.fill(); err != nil {
		return nil, nil, nil, err
	}
	if run, err = newFileRun(*cfg); err != nil {
		return nil, nil, nil, err
	}
	ts, err = turn.New(turn.Config{Addr: "127.0.0.1:0", Secret: []byte(benchSecret), AllowLoopback: true})
	if err != nil {
		run.close()
		return nil, nil, nil, fmt.Errorf("bench: TURN: %w", err)
	}
	return run, ts, func() { ts.Close(); run.close() }, nil
}

// signalingWithTURN starts the signaling server handing out ts's
// credentials.
func signalingWithTURN(ts *turn.Server) (string, func(), error) {
	urls := ts.URLs("")
	return startSignaling(signaling.Config{
		ICE: func(member, _ string) ([]protocol.ICEServer, time.Time) {
			u, p := ts.Credentials(member, time.Hour)
			return []protocol.ICEServer{{URLs: urls, Username: u, Credential: p}}, time.Now().Add(time.Hour)
		}})
}

func runPeer(ctx context.Context, cfg Config, mode string) error {
	run, ts, closeAll, err := newPeerRun(&cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	size, out := cfg.Size, cfg.Out
	fmt.Fprintf(out, "bench %s: %d MiB file on 127.0.0.1, %d cores; cpu = user+system CPU time per MB moved\n", mode, size>>20, runtime.NumCPU())
	line := func(name string, wall, cpu time.Duration, extra string) float64 {
		r := rate(size, wall)
		fmt.Fprintf(out, "%-44s %7.1f MB/s  %6.1f ms cpu/MB  (%s%s)\n", name, r, perMB(cpu, size), wall.Round(time.Millisecond), extra)
		return r
	}
	transport := string(protocol.TransportP2P)
	if mode == "turn" {
		transport = string(protocol.TransportTURN)
	}
	cli1Wall, cli1CPU, err := timeCLI(ctx, cfg.Serve[0], ts, run.src, transport, filepath.Join(run.received(), "cli1"), 1)
	if err != nil {
		return err
	}
	cliNWall, cliNCPU, err := timeCLI(ctx, cfg.Serve[0], ts, run.src, transport, filepath.Join(run.received(), "cliN"), cfg.Pairs)
	if err != nil {
		return err
	}
	oursWall, oursCPU, path, err := timeP2P(ctx, ts, run.src, mode, run.received(), cfg.Pairs)
	if err != nil {
		return err
	}
	rawWall, rawCPU, err := timeRawPion(ctx, ts, size, mode, 1)
	if err != nil {
		return err
	}
	rawNWall, rawNCPU, err := timeRawPion(ctx, ts, size, mode, cfg.Pairs)
	if err != nil {
		return err
	}
	cli1 := line("cloakroom send → recv --links 1 (whole)", cli1Wall, cli1CPU, ", path "+transport)
	cliN := line(fmt.Sprintf("cloakroom send → recv --links %d (whole)", cfg.Pairs), cliNWall, cliNCPU, ", path "+transport)
	ours := line(fmt.Sprintf("cloakroom in one process, %d links", cfg.Pairs), oursWall, oursCPU, ", path "+path)
	raw := line("baseline: raw pion, 1 data channel", rawWall, rawCPU, "")
	rawN := line(fmt.Sprintf("baseline: raw pion, %d pairs at once", cfg.Pairs), rawNWall, rawNCPU, "")
	fmt.Fprintf(out, "ratio CLI 1 link / raw pion 1 channel:    %.2f\n", cli1/raw)
	fmt.Fprintf(out, "ratio CLI %d links / raw pion 1 channel:   %.2f\n", cfg.Pairs, cliN/raw)
	fmt.Fprintf(out, "ratio in-process / raw pion 1 channel:    %.2f\n", ours/raw)
	fmt.Fprintf(out, "ratio raw %d pairs / raw pion 1 channel:   %.2f\n", cfg.Pairs, rawN/raw)
	fmt.Fprintf(out, "CPU ceiling of raw pion here: %d cores / %.1f ms per MB = %.0f MB/s\n",
		runtime.NumCPU(), perMB(rawCPU, size), float64(runtime.NumCPU())*1000/perMB(rawCPU, size))
	return nil
}

// perMB is cpu in milliseconds per MB (10^6 bytes) of size.
func perMB(cpu time.Duration, size int64) float64 {
	return float64(cpu) / float64(time.Millisecond) / (float64(size) / 1e6)
}

func timeP2P(ctx context.Context, ts *turn.Server, src, mode, outDir string, links int) (wall, cpu time.Duration, path string, err error) {
	url, stop, err := signalingWithTURN(ts)
	if err != nil {
		return 0, 0, "", err
	}
	defer stop()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, 0, "", fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(outDir)
	secret, err := crypto.NewSecret()
	if err != nil {
		return 0, 0, "", fmt.Errorf("bench: %w", err)
	}
	link := secret.Link(url)
	transport := protocol.TransportP2P
	if mode == "turn" {
		transport = protocol.TransportTURN
	}
	recv, err := client.Dial(ctx, link, client.Options{Dir: outDir, Transport: transport, Links: links})
	if err != nil {
		return 0, 0, "", fmt.Errorf("bench: receiver: %w", err)
	}
	defer recv.Close()
	send, err := client.Dial(ctx, link, client.Options{Transport: transport})
	if err != nil {
		return 0, 0, "", fmt.Errorf("bench: sender: %w", err)
	}
	defer send.Close()
	for len(send.OnlineMembers()) == 0 {
		time.Sleep(10 * time.Millisecond) // presence arrives asynchronously
	}
	cpu0, start := processCPU(), time.Now()
	rep, err := send.SendFile(ctx, src)
	if err != nil {
		return 0, 0, "", fmt.Errorf("bench: transfer: %w", err)
	}
	if f, err := recv.NextFile(ctx); err != nil || f.Err != nil {
		return 0, 0, "", fmt.Errorf("bench: receive: %v %v", err, f.Err)
	}
	return time.Since(start), processCPU() - cpu0, string(rep.Paths[recv.ID()]), nil
}

// rawPair is one bare pion pair with an open data channel: the baseline.
type rawPair struct {
	a, b *webrtc.PeerConnection
	dc   *webrtc.DataChannel
	got  chan struct{} // closed when b has received the pair's share
}

// newRawPair connects two pion peers with the client's settings and opens
// one data channel; b counts what arrives until size bytes did.
func newRawPair(ts *turn.Server, size int64, mode string) (*rawPair, error) {
	a, b, err := rawPeers(ts, mode)
	if err != nil {
		return nil, err
	}
	return pairUp(a, b, size)
}

// timeRawPair times size bytes from a to b over one data channel and
// closes both.
func timeRawPair(ctx context.Context, a, b *webrtc.PeerConnection, size int64) (time.Duration, error) {
	rp, err := pairUp(a, b, size)
	if err != nil {
		return 0, err
	}
	defer rp.close()
	start := time.Now()
	if err := sendRaw(ctx, rp.dc, size); err != nil {
		return 0, err
	}
	select {
	case <-rp.got:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return time.Since(start), nil
}

// pairUp connects a and b and opens one data channel from a; b counts
// what arrives until size bytes did. On error both are closed.
func pairUp(a, b *webrtc.PeerConnection, size int64) (*rawPair, error) {
	rp := &rawPair{a: a, b: b, got: make(chan struct{})}
	b.OnDataChannel(func(dc *webrtc.DataChannel) {
		var n int64
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if n += int64(len(m.Data)); n >= size && n-int64(len(m.Data)) < size {
				close(rp.got)
			}
		})
	})
	var err error
	if rp.dc, err = a.CreateDataChannel("raw", nil); err != nil {
		rp.close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	opened := make(chan struct{})
	rp.dc.OnOpen(func() { close(opened) })
	if err := connectPair(a, b); err != nil {
		rp.close()
		return nil, err
	}
	select {
	case <-opened:
	case <-time.After(20 * time.Second):
		rp.close()
		return nil, fmt.Errorf("bench: raw pion data channel did not open")
	}
	return rp, nil
}

func (rp *rawPair) close() { _ = rp.a.Close(); _ = rp.b.Close() }

// timeRawPion sends size bytes in full-size chunk messages over n bare
// pion pairs at once (size/n each; n = 1 is one data channel on one SCTP
// association), with the client's settings and flow control, without
// crypto or disk. The pairs connect first; the clock runs from the first
// message sent to the last received, and cpu is the process's CPU time
// (user+system) over the same span.
func timeRawPion(ctx context.Context, ts *turn.Server, size int64, mode string, n int) (wall, cpu time.Duration, err error) {
	pairs := make([]*rawPair, 0, n)
	defer func() {
		for _, rp := range pairs {
			rp.close()
		}
	}()
	share := size / int64(n)
	for range n {
		rp, err := newRawPair(ts, share, mode)
		if err != nil {
			return 0, 0, err
		}
		pairs = append(pairs, rp)
	}
	errs := make(chan error, n)
	cpu0, start := processCPU(), time.Now()
	for _, rp := range pairs {
		go func() { errs <- sendRaw(ctx, rp.dc, share) }()
	}
	for range n {
		if err := <-errs; err != nil {
			return 0, 0, err
		}
	}
	for _, rp := range pairs {
		select {
		case <-rp.got:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	return time.Since(start), processCPU() - cpu0, nil
}

// rawPeers makes two peer connections with the client's settings; for
// mode "turn" they use only the TURN server's relay candidates.
func rawPeers(ts *turn.Server, mode string) (a, b *webrtc.PeerConnection, err error) {
	api := client.NewWebRTCAPI(nil)
	var cfg webrtc.Configuration
	if mode == "turn" {
		u, p := ts.Credentials("raw", time.Hour)
		cfg.ICEServers = []webrtc.ICEServer{{URLs: ts.URLs(""), Username: u, Credential: p}}
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	if a, err = api.NewPeerConnection(cfg); err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	if b, err = api.NewPeerConnection(cfg); err != nil {
		_ = a.Close()
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	return a, b, nil
}

// sendRaw sends size bytes of full-size chunk messages on dc, keeping at
// most 4 MiB buffered like the client does.
func sendRaw(ctx context.Context, dc *webrtc.DataChannel, size int64) error {
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(1 << 20)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	msg := make([]byte, protocol.ChunkUpHeader+protocol.MaxSealedChunk)
	_, _ = rand.Read(msg)
	for sent := int64(0); sent < size; sent += int64(len(msg)) {
		for dc.BufferedAmount() > 4<<20 {
			select {
			case <-low:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := dc.Send(msg); err != nil {
			return fmt.Errorf("bench: raw send: %w", err)
		}
	}
	return nil
}

// connectPair exchanges complete (non-trickle) descriptions between a and b.
func connectPair(a, b *webrtc.PeerConnection) error {
	offer, err := a.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ga := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	<-ga
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	gb := webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	<-gb
	if err := a.SetRemoteDescription(*b.LocalDescription()); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
