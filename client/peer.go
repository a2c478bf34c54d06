package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"cloakroom/internal/protocol"
)

const (
	dcLabel       = "cloakroom"
	dcID          = uint16(0) // the negotiated channel's SCTP stream id
	dcHighWater   = 4 << 20   // pause sending above this many buffered bytes
	dcLowWater    = 1 << 20   // resume below this
	confirmLength = 32
)

// peerConn is one WebRTC peer connection with a member: one data channel,
// sealed signalling, key confirmation over both DTLS fingerprints.
type peerConn struct {
	set     *peers
	member  string
	session string
	offerer bool
	mode    protocol.Mode
	pc      *webrtc.PeerConnection

	mu        sync.Mutex
	dc        *webrtc.DataChannel
	remoteSet bool
	pending   []webrtc.ICECandidateInit
	confirmed bool                      // the peer's confirmation verified
	sentOwn   bool                      // our confirmation sent
	descSent  bool                      // our offer/answer went out
	outbox    []webrtc.ICECandidateInit // our candidates gathered before it
	handler   func([]byte)              // after confirmation: every data-channel message

	linked atomic.Bool   // made a link (Client.linkReady), once
	ready  chan struct{} // closed once confirmed
	failed chan struct{} // closed on failure or close
	err    error
	// lowWater is closed (and replaced, under mu) each time the buffered
	// amount drops below dcLowWater: every sender waiting for room wakes
	// (a single token would wake one and leave the others waiting for a
	// drop that never comes once nothing more is sent).
	lowWater chan struct{}
	// sending is held (a token in a channel of one, so waiting for it
	// can end with a context) by the one goroutine sending a message:
	// pion's SCTP stream gives a message its sequence number and queues
	// its fragments in two steps, and two messages written at once on one
	// stream can be queued out of order, which stalled the association for
	// good (TestSendManySenders).
	sending chan struct{}
}

// newPeer makes a peer connection for one session with member.
func (ps *peers) newPeer(member, session string, offerer bool, mode protocol.Mode) (*peerConn, error) {
	cfg, err := ps.peerConfig(mode)
	if err != nil {
		return nil, err
	}
	pc, err := ps.api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	p := &peerConn{set: ps, member: member, session: session, offerer: offerer, mode: mode, pc: pc,
		ready: make(chan struct{}), failed: make(chan struct{}), lowWater: make(chan struct{}), sending: make(chan struct{}, 1)}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		p.mu.Lock()
		if !p.descSent { // the peer must see our description first
			p.outbox = append(p.outbox, init)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.sendCandidate(init)
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		ps.log.Debug("peer: ICE state", "member", short8(member), "session", short8(session), "mode", mode, "state", s)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		ps.log.Debug("peer: connection state", "member", short8(member), "session", short8(session), "mode", mode, "state", s)
		switch s {
		case webrtc.PeerConnectionStateFailed:
			p.fail(fmt.Errorf("%s connection with %s: %w", mode, short8(member), ErrICE))
		case webrtc.PeerConnectionStateClosed:
			p.fail(fmt.Errorf("%s connection with %s: %w", mode, short8(member), ErrPeerGone))
		case webrtc.PeerConnectionStateDisconnected:
			// Consent checks missed for a few seconds (a busy machine, a
			// Wi-Fi hiccup): ICE may recover; it says Failed if it does not.
			ps.log.Info("peer connection interrupted; waiting for ICE to recover", "member", short8(member))
		}
	})
	// One pre-negotiated channel (same id on both sides, no in-band open
	// handshake): each side's OnOpen fires once its own SCTP association is
	// up. With an in-band open, Chromium could announce the channel while
	// its association was still finishing the simultaneous open, and a
	// message sent at once then never left it (docs/DECISIONS.md).
	ordered, negotiated, id := true, true, dcID
	dc, err := pc.CreateDataChannel(dcLabel, &webrtc.DataChannelInit{Ordered: &ordered, Negotiated: &negotiated, ID: &id})
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("data channel: %w", err)
	}
	p.attach(dc)
	ps.mu.Lock()
	ps.bySession[session] = p
	ps.mu.Unlock()
	return p, nil
}

func (p *peerConn) attach(dc *webrtc.DataChannel) {
	p.mu.Lock()
	p.dc = dc
	p.mu.Unlock()
	p.watchLow(dc)
	dc.OnOpen(func() {
		p.set.log.Debug("peer: data channel open", "member", short8(p.member), "session", short8(p.session))
		tag, err := p.confirmTag(p.offerer)
		if err == nil {
			err = dc.Send(protocol.AppendDC(nil, &protocol.DCMessage{Kind: protocol.DCConfirm, Tag: tag}))
		}
		if err != nil {
			p.fail(fmt.Errorf("key confirmation: %v: %w", err, ErrKeyConfirm))
			return
		}
		p.set.log.Debug("peer: key confirmation sent", "member", short8(p.member), "session", short8(p.session))
		p.mu.Lock()
		p.sentOwn = true
		p.readyLocked()
		p.mu.Unlock()
	})
	dc.OnClose(func() { p.fail(fmt.Errorf("data channel with %s closed: %w", short8(p.member), ErrPeerGone)) })
	dc.OnMessage(func(msg webrtc.DataChannelMessage) { p.onMessage(msg.Data) })
}

// onMessage takes the peer's key confirmation first, then hands every
// message to the transfer handler.
func (p *peerConn) onMessage(data []byte) {
	p.mu.Lock()
	confirmed, handler := p.confirmed, p.handler
	p.mu.Unlock()
	if confirmed {
		if handler != nil {
			handler(data)
		}
		return
	}
	m, err := protocol.ParseDC(data)
	if err != nil || m.Kind != protocol.DCConfirm {
		p.fail(fmt.Errorf("first message from %s is not a key confirmation: %w", short8(p.member), ErrKeyConfirm))
		return
	}
	p.set.log.Debug("peer: key confirmation received", "member", short8(p.member), "session", short8(p.session))
	if err := p.verifyConfirm(m.Tag); err != nil {
		p.fail(err)
		return
	}
	p.mu.Lock()
	p.confirmed = true
	p.readyLocked()
	p.mu.Unlock()
}

// readyLocked opens the session for transfers once both confirmations have
// passed: ours sent (so it is the first message the peer sees) and theirs
// verified.
func (p *peerConn) readyLocked() {
	if p.confirmed && p.sentOwn && p.err == nil {
		select {
		case <-p.ready:
		default:
			close(p.ready)
		}
	}
}

func (p *peerConn) sendCandidate(init webrtc.ICECandidateInit) {
	if err := p.set.room.sendSignal(p.member, &protocol.Signal{Kind: protocol.SignalCandidate, Session: p.session, Candidate: toSignalCandidate(init)}); err != nil {
		p.fail(err)
	}
}

// sendDescription signals our offer or answer, then the candidates gathered
// while it was being made (trickle ICE: a candidate must not overtake the
// description it belongs to).
func (p *peerConn) sendDescription(body *protocol.Signal) error {
	if err := p.set.room.sendSignal(p.member, body); err != nil {
		return err
	}
	p.mu.Lock()
	p.descSent = true
	out := p.outbox
	p.outbox = nil
	p.mu.Unlock()
	for _, cand := range out {
		p.sendCandidate(cand)
	}
	return nil
}

// fail ends the session with err (the first error wins).
func (p *peerConn) fail(err error) {
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	p.err = err
	close(p.failed)
	p.mu.Unlock()
	p.set.log.Debug("peer session ended", "member", short8(p.member), "session", short8(p.session), "err", err)
	p.set.remove(p.session)
	go p.pc.Close() // Close waits for pion's goroutines; never from their callbacks
}

// isReady reports whether the session got as far as confirmed keys.
func (p *peerConn) isReady() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// Err returns why the session ended.
func (p *peerConn) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// close ends the session normally.
func (p *peerConn) close() { p.fail(fmt.Errorf("session closed: %w", ErrPeerGone)) }

// waitReady waits for the data channel to open and both keys to be confirmed.
func (p *peerConn) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.ready:
		return nil
	case <-p.failed:
		return p.Err()
	case <-t.C:
		err := fmt.Errorf("%s connection with %s: no connection within %s: %w", p.mode, short8(p.member), timeout, ErrICE)
		p.fail(err)
		return err
	case <-ctx.Done():
		p.close()
		return ctx.Err()
	}
}

// watchLow wakes the senders waiting for room on dc whenever its buffered
// amount drops below dcLowWater.
func (p *peerConn) watchLow(dc *webrtc.DataChannel) {
	dc.SetBufferedAmountLowThreshold(dcLowWater)
	dc.OnBufferedAmountLow(func() {
		p.mu.Lock()
		close(p.lowWater)
		p.lowWater = make(chan struct{})
		p.mu.Unlock()
	})
}

// send sends one message, waiting while too much is buffered.
func (p *peerConn) send(ctx context.Context, b []byte) error {
	select {
	case p.sending <- struct{}{}:
		defer func() { <-p.sending }()
	case <-p.failed:
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		// The wake-up channel is taken before the amount is read: a drop
		// between the two closes it, so no drop is missed.
		p.mu.Lock()
		dc, low := p.dc, p.lowWater
		p.mu.Unlock()
		if dc.BufferedAmount() <= dcHighWater {
			if err := dc.Send(b); err != nil {
				return fmt.Errorf("send to %s: %v: %w", short8(p.member), err, ErrPeerGone)
			}
			return nil
		}
		select {
		case <-low:
		case <-p.failed:
			return p.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// setHandler installs the transfer handler for confirmed messages.
func (p *peerConn) setHandler(h func([]byte)) {
	p.mu.Lock()
	p.handler = h
	p.mu.Unlock()
}

// drain waits until the data channel has nothing buffered (the peer
// acknowledged everything sent), the session ends, or ctx ends.
func (p *peerConn) drain(ctx context.Context) {
	p.mu.Lock()
	dc := p.dc
	p.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for dc.BufferedAmount() > 0 {
		select {
		case <-t.C:
		case <-p.failed:
			return
		case <-ctx.Done():
			return
		}
	}
}
