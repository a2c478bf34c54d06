package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"cloakroom/internal/protocol"
)

// Errors of the peer-to-peer paths.
var (
	ErrDeclined   = errors.New("peer declined a peer-to-peer connection")
	ErrNoTURN     = errors.New("the server offers no TURN relay")
	ErrICE        = errors.New("peer-to-peer connection failed")
	ErrKeyConfirm = errors.New("key confirmation failed: the data channel is not bound to the member's key")
	ErrPeerGone   = errors.New("peer connection lost")
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
	c       *Client
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

	ready    chan struct{} // closed once confirmed
	failed   chan struct{} // closed on failure or close
	err      error
	lowWater chan struct{} // a token when the buffered amount drops
}

// newPeer makes a peer connection for one session with member.
func (c *Client) newPeer(member, session string, offerer bool, mode protocol.Mode) (*peerConn, error) {
	cfg, err := c.peerConfig(mode)
	if err != nil {
		return nil, err
	}
	pc, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	p := &peerConn{c: c, member: member, session: session, offerer: offerer, mode: mode, pc: pc,
		ready: make(chan struct{}), failed: make(chan struct{}), lowWater: make(chan struct{}, 1)}
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
		c.log.Debug("peer: ICE state", "member", short8(member), "session", short8(session), "mode", mode, "state", s)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.log.Debug("peer: connection state", "member", short8(member), "session", short8(session), "mode", mode, "state", s)
		switch s {
		case webrtc.PeerConnectionStateFailed:
			p.fail(fmt.Errorf("%s connection with %s: %w", mode, short8(member), ErrICE))
		case webrtc.PeerConnectionStateClosed:
			p.fail(fmt.Errorf("%s connection with %s: %w", mode, short8(member), ErrPeerGone))
		case webrtc.PeerConnectionStateDisconnected:
			// Consent checks missed for a few seconds (a busy machine, a
			// Wi-Fi hiccup): ICE may recover; it says Failed if it does not.
			c.log.Info("peer connection interrupted; waiting for ICE to recover", "member", short8(member))
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
	c.mu.Lock()
	c.peers[session] = p
	c.mu.Unlock()
	return p, nil
}

// peerConfig returns the ICE configuration of a mode. Direct uses the
// room's TURN server only as a STUN server (for server-reflexive
// candidates); TURN mode uses relay candidates only.
func (c *Client) peerConfig(mode protocol.Mode) (webrtc.Configuration, error) {
	c.refreshICE()
	c.mu.Lock()
	ice := c.ice
	c.mu.Unlock()
	var cfg webrtc.Configuration
	if mode == protocol.ModeTURN {
		if len(ice) == 0 {
			return cfg, ErrNoTURN
		}
		for _, s := range ice {
			cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		return cfg, nil
	}
	if stun := stunURLs(ice); len(stun) > 0 {
		cfg.ICEServers = []webrtc.ICEServer{{URLs: stun}}
	}
	return cfg, nil
}

// iceRefreshBefore is how long before expiry TURN credentials are renewed:
// a relayed session cannot outlive the credentials it allocated with.
const iceRefreshBefore = 30 * time.Minute

// refreshICE asks the server for fresh TURN credentials when the current
// ones are close to expiry, waiting a little for the answer.
func (c *Client) refreshICE() {
	c.mu.Lock()
	stale := len(c.ice) > 0 && time.Until(c.iceExp) < iceRefreshBefore
	fresh := c.iceFresh
	c.mu.Unlock()
	if !stale || c.writeJSON(&protocol.Message{Type: protocol.TypeTURN}) != nil {
		return
	}
	select {
	case <-fresh:
	case <-time.After(5 * time.Second):
		c.log.Warn("no fresh TURN credentials from the server; using the old ones")
	case <-c.ctx.Done():
	}
}

// stunURLs turns the TURN servers' UDP URLs into STUN URLs (a TURN server
// answers STUN binding requests).
func stunURLs(ice []protocol.ICEServer) []string {
	var out []string
	for _, s := range ice {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") && !strings.Contains(u, "transport=tcp") {
				host, _, _ := strings.Cut(strings.TrimPrefix(u, "turn:"), "?")
				out = append(out, "stun:"+host)
			}
		}
	}
	return out
}

func (p *peerConn) attach(dc *webrtc.DataChannel) {
	p.mu.Lock()
	p.dc = dc
	p.mu.Unlock()
	dc.SetBufferedAmountLowThreshold(dcLowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case p.lowWater <- struct{}{}:
		default:
		}
	})
	dc.OnOpen(func() {
		p.c.log.Debug("peer: data channel open", "member", short8(p.member), "session", short8(p.session))
		tag, err := p.confirmTag(p.offerer)
		if err == nil {
			err = dc.Send(protocol.AppendDC(nil, &protocol.DCMessage{Kind: protocol.DCConfirm, Tag: tag}))
		}
		if err != nil {
			p.fail(fmt.Errorf("key confirmation: %v: %w", err, ErrKeyConfirm))
			return
		}
		p.c.log.Debug("peer: key confirmation sent", "member", short8(p.member), "session", short8(p.session))
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
	p.c.log.Debug("peer: key confirmation received", "member", short8(p.member), "session", short8(p.session))
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
	if err := p.c.sendSignal(p.member, &protocol.Signal{Kind: protocol.SignalCandidate, Session: p.session, Candidate: toSignalCandidate(init)}); err != nil {
		p.fail(err)
	}
}

// sendDescription signals our offer or answer, then the candidates gathered
// while it was being made (trickle ICE: a candidate must not overtake the
// description it belongs to).
func (p *peerConn) sendDescription(body *protocol.Signal) error {
	if err := p.c.sendSignal(p.member, body); err != nil {
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

// fingerprints returns the DTLS fingerprints of the offer and the answer, as
// the two sides exchanged them (sealed) in their session descriptions.
func (p *peerConn) fingerprints() (offerFP, answerFP string, err error) {
	local, remote := p.pc.LocalDescription(), p.pc.RemoteDescription()
	if local == nil || remote == nil {
		return "", "", fmt.Errorf("no session descriptions: %w", ErrKeyConfirm)
	}
	lf, rf := sdpFingerprint(local.SDP), sdpFingerprint(remote.SDP)
	if lf == "" || rf == "" {
		return "", "", fmt.Errorf("no DTLS fingerprint in the session descriptions: %w", ErrKeyConfirm)
	}
	if p.offerer {
		return lf, rf, nil
	}
	return rf, lf, nil
}

func (p *peerConn) confirmTag(fromOfferer bool) ([]byte, error) {
	pair, err := p.c.pairFor(p.member)
	if err != nil {
		return nil, err
	}
	off, ans, err := p.fingerprints()
	if err != nil {
		return nil, err
	}
	return pair.Confirm(off, ans, fromOfferer), nil
}

func (p *peerConn) verifyConfirm(tag []byte) error {
	pair, err := p.c.pairFor(p.member)
	if err != nil {
		return err
	}
	off, ans, err := p.fingerprints()
	if err != nil {
		return err
	}
	if err := pair.VerifyConfirm(off, ans, !p.offerer, tag); err != nil {
		return fmt.Errorf("from %s: %v: %w", short8(p.member), err, ErrKeyConfirm)
	}
	return nil
}

// sdpFingerprint returns the value of the first a=fingerprint line.
func sdpFingerprint(sdp string) string {
	for _, line := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=fingerprint:"); ok {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
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
	p.c.log.Debug("peer session ended", "member", short8(p.member), "session", short8(p.session), "err", err)
	p.c.mu.Lock()
	delete(p.c.peers, p.session)
	p.c.mu.Unlock()
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

// send sends one message, waiting while too much is buffered.
func (p *peerConn) send(ctx context.Context, b []byte) error {
	p.mu.Lock()
	dc := p.dc
	p.mu.Unlock()
	for dc.BufferedAmount() > dcHighWater {
		select {
		case <-p.lowWater:
		case <-p.failed:
			return p.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := dc.Send(b); err != nil {
		return fmt.Errorf("send to %s: %v: %w", short8(p.member), err, ErrPeerGone)
	}
	return nil
}

// setHandler installs the transfer handler for confirmed messages.
func (p *peerConn) setHandler(h func([]byte)) {
	p.mu.Lock()
	p.handler = h
	p.mu.Unlock()
}

// path names the path the connection took: direct, TURN-UDP, TURN-TCP.
func (p *peerConn) path() protocol.Path {
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return p.mode.Path()
	}
	if pair.Local.Typ != webrtc.ICECandidateTypeRelay && pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
		return protocol.PathDirect
	}
	if pair.Local.Typ == webrtc.ICECandidateTypeRelay {
		if st, ok := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePairStats(); ok {
			if proto := p.relayProtocol(st.LocalCandidateID); proto != "" {
				return protocol.TURNPath(proto)
			}
		}
	}
	return protocol.PathTURN
}

func (p *peerConn) relayProtocol(candidateID string) string {
	for _, s := range p.pc.GetStats() {
		if cs, ok := s.(webrtc.ICECandidateStats); ok && cs.ID == candidateID {
			return cs.RelayProtocol
		}
	}
	return ""
}

// routeSignal delivers a signal to its session, or starts an answering
// session for an offer.
func (c *Client) routeSignal(from string, b *protocol.Signal) {
	c.mu.Lock()
	p := c.peers[b.Session]
	c.mu.Unlock()
	if p != nil && p.member != from {
		c.log.Warn("signal for another member's session refused", "from", from)
		return
	}
	switch b.Kind {
	case "offer":
		if p == nil {
			c.answer(from, b)
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

// abortPeer fails every session with member (its signalling was tampered with).
func (c *Client) abortPeer(member string, err error) {
	c.mu.Lock()
	var ps []*peerConn
	for _, p := range c.peers {
		if p.member == member {
			ps = append(ps, p)
		}
	}
	c.mu.Unlock()
	for _, p := range ps {
		p.fail(err)
	}
}

func (p *peerConn) setRemote(sd webrtc.SessionDescription) {
	if err := p.pc.SetRemoteDescription(sd); err != nil {
		p.fail(fmt.Errorf("remote description from %s: %v: %w", short8(p.member), err, ErrICE))
		return
	}
	p.mu.Lock()
	p.remoteSet = true
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, cand := range pending {
		p.addCandidate(cand)
	}
}

// addCandidate adds a remote candidate, buffering it until the remote
// description is set (trickle ICE).
func (p *peerConn) addCandidate(cand webrtc.ICECandidateInit) {
	p.mu.Lock()
	if !p.remoteSet {
		if len(p.pending) < 64 {
			p.pending = append(p.pending, cand)
		}
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if err := p.pc.AddICECandidate(cand); err != nil {
		p.c.log.Debug("remote candidate ignored", "err", err)
	}
}

// offer starts an offering session with member in mode.
func (c *Client) offer(member string, mode protocol.Mode) (*peerConn, error) {
	session := newSessionID()
	p, err := c.newPeer(member, session, true, mode)
	if err != nil {
		return nil, err
	}
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
func (c *Client) answer(from string, b *protocol.Signal) {
	if c.opts.Transport == protocol.TransportRelay {
		_ = c.sendSignal(from, &protocol.Signal{Kind: protocol.SignalDecline, Session: b.Session, Reason: "receiver uses --transport relay"})
		return
	}
	mode := b.Mode
	p, err := c.newPeer(from, b.Session, false, mode)
	if err != nil {
		_ = c.sendSignal(from, &protocol.Signal{Kind: protocol.SignalDecline, Session: b.Session, Reason: err.Error()})
		return
	}
	p.setHandler(func(data []byte) { c.receiveDC(p, data) })
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

// ResetPeers ends every peer-to-peer session, as a change of network would.
// With transport auto a file whose session breaks this way continues through
// the relay from the chunks its receiver already holds.
func (c *Client) ResetPeers() {
	c.mu.Lock()
	ps := make([]*peerConn, 0, len(c.peers))
	for _, p := range c.peers {
		ps = append(ps, p)
	}
	c.mu.Unlock()
	for _, p := range ps {
		p.fail(fmt.Errorf("session reset: %w", ErrPeerGone))
	}
}
