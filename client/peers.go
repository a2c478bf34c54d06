package client

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/net/proxy"

	"cloakroom/internal/protocol"
)

// peers holds a client's peer sessions by session id: it makes them
// (offering for a send, answering a member's offer), routes signals to
// them, and ends them.
type peers struct {
	room      *room
	log       *slog.Logger
	api       *webrtc.API
	transport protocol.Transport
	accept    func(*peerConn) // a session is made (offering or answering): install its handler

	mu        sync.Mutex
	bySession map[string]*peerConn
}

func newPeers(r *room, opts Options, accept func(*peerConn)) *peers {
	var iceDialer proxy.Dialer
	if opts.Proxy != nil {
		iceDialer = turnDialer{d: newProxyDialer(opts.Proxy, nil), tlsName: r.turnsName}
	}
	return &peers{room: r, log: opts.Logger, api: newWebRTCAPI(opts.Logger, iceDialer, opts.HostAddr), transport: opts.Transport,
		accept: accept, bySession: map[string]*peerConn{}}
}

// remove forgets an ended session.
func (ps *peers) remove(session string) {
	ps.mu.Lock()
	delete(ps.bySession, session)
	ps.mu.Unlock()
}

// all returns the sessions now.
func (ps *peers) all() []*peerConn {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]*peerConn, 0, len(ps.bySession))
	for _, p := range ps.bySession {
		out = append(out, p)
	}
	return out
}

// resetAll fails every session, as a change of network would.
func (ps *peers) resetAll() {
	for _, p := range ps.all() {
		p.fail(fmt.Errorf("session reset: %w", ErrPeerGone))
	}
}

// closeAll ends every session. What a ready session still has buffered
// (a verdict, a last chunk) is given a moment (3 s in all) to be
// acknowledged by the peer first.
func (ps *peers) closeAll() {
	grace, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	all := ps.all()
	for _, p := range all {
		if p.isReady() {
			p.drain(grace)
		}
		p.close()
	}
	// Close the peer connections before returning (fail closes them on a
	// goroutine of its own): a process that exits next must not leave its
	// peers to find out by ICE timeouts that it is gone.
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.pc.Close()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// routeSignal delivers a signal to its session, or starts an answering
// session for an offer.
func (ps *peers) routeSignal(from string, b *protocol.Signal) {
	ps.mu.Lock()
	p := ps.bySession[b.Session]
	ps.mu.Unlock()
	if p != nil && p.member != from {
		ps.log.Warn("signal for another member's session refused", "from", from)
		return
	}
	switch b.Kind {
	case "offer":
		if p == nil {
			ps.answer(from, b)
		}
	case "answer":
		if p != nil && p.offerer {
			p.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: b.SDP})
		}
	case "candidate":
		if p != nil && b.Candidate != nil {
			p.addCandidate(fromSignalCandidate(b.Candidate))
		}
	case "decline":
		if p != nil {
			p.fail(fmt.Errorf("%s: %s: %w", short8(from), b.Reason, ErrDeclined))
		}
	case "bye":
		if p != nil {
			p.close()
		}
	}
}

// abortPeer fails every session with member still being set up (its
// signalling was tampered with).
func (ps *peers) abortPeer(member string, err error) {
	for _, p := range ps.all() {
		// A confirmed session is authenticated end to end (its DTLS
		// fingerprints are bound by the key confirmation): a bad signal
		// cannot have touched it, and a replayed one must not end it.
		if p.member == member && !p.isReady() {
			p.fail(err)
		}
	}
}

// offer starts an offering session with member in mode.
func (ps *peers) offer(member string, mode protocol.Mode) (*peerConn, error) {
	session := newSessionID()
	p, err := ps.newPeer(member, session, true, mode)
	if err != nil {
		return nil, err
	}
	ps.accept(p)
	sd, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(sd)
	}
	if err == nil {
		err = p.sendDescription(&protocol.Signal{Kind: protocol.SignalOffer, Session: session, Mode: mode, SDP: sd.SDP})
	}
	if err != nil {
		err = fmt.Errorf("offer to %s: %w", short8(member), err)
		p.fail(err)
		return nil, err
	}
	return p, nil
}

// answer accepts an offer from a verified member (unless this client is
// forced onto the relay) and sets up the receiving side of its transfers.
func (ps *peers) answer(from string, b *protocol.Signal) {
	if ps.transport == protocol.TransportRelay {
		_ = ps.room.sendSignal(from, &protocol.Signal{Kind: protocol.SignalDecline, Session: b.Session, Reason: "receiver uses --transport relay"})
		return
	}
	mode := b.Mode
	p, err := ps.newPeer(from, b.Session, false, mode)
	if err != nil {
		_ = ps.room.sendSignal(from, &protocol.Signal{Kind: protocol.SignalDecline, Session: b.Session, Reason: err.Error()})
		return
	}
	ps.accept(p)
	p.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: b.SDP})
	sd, err := p.pc.CreateAnswer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(sd)
	}
	if err == nil {
		err = p.sendDescription(&protocol.Signal{Kind: protocol.SignalAnswer, Session: b.Session, SDP: sd.SDP})
	}
	if err != nil {
		p.fail(fmt.Errorf("answer to %s: %w", short8(from), err))
	}
}
