package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
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

func runPeer(ctx context.Context, cfg Config, mode string) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	run, err := newFileRun(cfg)
	if err != nil {
		return err
	}
	defer run.close()
	ts, err := turn.New(turn.Config{Addr: "127.0.0.1:0", Secret: []byte("bench-secret"), AllowLoopback: true})
	if err != nil {
		return fmt.Errorf("bench: TURN: %w", err)
	}
	defer ts.Close()
	size, out := cfg.Size, cfg.Out
	fmt.Fprintf(out, "bench %s: %d MiB file, sender and receiver in one process on 127.0.0.1\n", mode, size>>20)
	ours, path, err := timeP2P(ctx, ts, run.src, mode, run.received())
	if err != nil {
		return err
	}
	raw, err := timeRawPion(ctx, ts, size, mode)
	if err != nil {
		return err
	}
	r1, r2 := rate(size, ours), rate(size, raw)
	fmt.Fprintf(out, "%-34s %8.1f MB/s  (%s, path %s)\n", "cloakroom (seal+hash+disk)", r1, ours.Round(time.Millisecond), path)
	fmt.Fprintf(out, "%-34s %8.1f MB/s  (%s)\n", "baseline: raw pion data channel", r2, raw.Round(time.Millisecond))
	fmt.Fprintf(out, "ratio cloakroom / raw pion: %.2f\n", r1/r2)
	return nil
}

func timeP2P(ctx context.Context, ts *turn.Server, src, mode, outDir string) (time.Duration, string, error) {
	urls := ts.URLs("")
	url, stop, err := startSignaling(signaling.Config{
		ICE: func(member string) ([]protocol.ICEServer, time.Time) {
			u, p := ts.Credentials(member, time.Hour)
			return []protocol.ICEServer{{URLs: urls, Username: u, Credential: p}}, time.Now().Add(time.Hour)
		}})
	if err != nil {
		return 0, "", err
	}
	defer stop()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, "", fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(outDir)
	secret, err := crypto.NewSecret()
	if err != nil {
		return 0, "", fmt.Errorf("bench: %w", err)
	}
	link := secret.Link(url)
	transport := protocol.TransportP2P
	if mode == "turn" {
		transport = protocol.TransportTURN
	}
	recv, err := client.Dial(ctx, link, client.Options{Dir: outDir, Transport: transport})
	if err != nil {
		return 0, "", fmt.Errorf("bench: receiver: %w", err)
	}
	defer recv.Close()
	send, err := client.Dial(ctx, link, client.Options{Transport: transport})
	if err != nil {
		return 0, "", fmt.Errorf("bench: sender: %w", err)
	}
	defer send.Close()
	for len(send.OnlineMembers()) == 0 {
		time.Sleep(10 * time.Millisecond) // presence arrives asynchronously
	}
	start := time.Now()
	rep, err := send.SendFile(ctx, src)
	if err != nil {
		return 0, "", fmt.Errorf("bench: transfer: %w", err)
	}
	if f, err := recv.NextFile(ctx); err != nil || f.Err != nil {
		return 0, "", fmt.Errorf("bench: receive: %v %v", err, f.Err)
	}
	return time.Since(start), string(rep.Paths[recv.ID()]), nil
}

// timeRawPion sends size bytes in 63 KiB messages between two pion peers
// with the client's settings and flow control, without crypto or disk.
func timeRawPion(ctx context.Context, ts *turn.Server, size int64, mode string) (time.Duration, error) {
	a, b, err := rawPeers(ts, mode)
	if err != nil {
		return 0, err
	}
	return timeRawPair(ctx, a, b, size)
}

// timeRawPair times size bytes from a to b and closes both.
func timeRawPair(ctx context.Context, a, b *webrtc.PeerConnection, size int64) (time.Duration, error) {
	defer a.Close()
	defer b.Close()
	got := make(chan struct{})
	b.OnDataChannel(func(dc *webrtc.DataChannel) {
		var n int64
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if n += int64(len(m.Data)); n >= size {
				close(got)
			}
		})
	})
	dc, err := a.CreateDataChannel("raw", nil)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	if err := connectPair(a, b); err != nil {
		return 0, err
	}
	select {
	case <-opened:
	case <-time.After(20 * time.Second):
		return 0, fmt.Errorf("bench: raw pion data channel did not open")
	}
	start := time.Now()
	if err := sendRaw(ctx, dc, size); err != nil {
		return 0, err
	}
	select {
	case <-got:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return time.Since(start), nil
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
