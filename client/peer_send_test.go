package client

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// pionPair connects two in-process pion peers over loopback and returns the
// offerer's open data channel and a counter of bytes the answerer read.
func pionPair(t *testing.T) (*webrtc.DataChannel, *atomic.Int64) {
	t.Helper()
	api := NewWebRTCAPI(slog.New(slog.DiscardHandler))
	a, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	got := &atomic.Int64{}
	b.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) { got.Add(int64(len(m.Data))) })
	})
	dc, err := a.CreateDataChannel("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	dc.OnOpen(func() { close(open) })
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather = webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := a.SetRemoteDescription(*b.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-open:
	case <-time.After(30 * time.Second):
		t.Fatal("data channel did not open")
	}
	return dc, got
}

// TestSendManySenders: several goroutines send on one link at once (a link
// server's chunks, haves, wants, hash pieces and verdicts do), waiting for
// room while the channel is full. Unserialized, two concurrent writers
// stalled pion's association for good after a few MB (the peer stopped
// reading, the buffer never drained): a fetch stuck at 13 chunks in CI.
// And every drop of the buffered amount must wake whoever waits.
func TestSendManySenders(t *testing.T) {
	dc, got := pionPair(t)
	p := &peerConn{member: "00000000-0000-0000-0000-000000000000", dc: dc, failed: make(chan struct{}), lowWater: make(chan struct{}), sending: make(chan struct{}, 1)}
	p.watchLow(dc)
	const senders, msgs, size = 4, 64, 60 << 10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, size)
			for range msgs {
				if err := p.send(ctx, msg); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a sender never got room (buffered %d bytes, the peer read %d): %v", dc.BufferedAmount(), got.Load(), err)
	}
	want := int64(senders * msgs * size)
	for deadline := time.Now().Add(time.Minute); got.Load() < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() != want {
		t.Fatalf("peer read %d bytes, want %d", got.Load(), want)
	}
}
