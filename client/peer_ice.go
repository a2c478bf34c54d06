package client

import (
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"cloakroom/internal/protocol"
)

// peerConfig returns the ICE configuration of a mode. Direct uses the
// room's TURN server only as a STUN server (for server-reflexive
// candidates); TURN mode uses relay candidates only.
func (ps *peers) peerConfig(mode protocol.Mode) (webrtc.Configuration, error) {
	ice := ps.room.iceServers()
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
func (r *room) refreshICE() {
	r.mu.Lock()
	stale := len(r.ice) > 0 && time.Until(r.iceExp) < iceRefreshBefore
	fresh := r.iceFresh
	r.mu.Unlock()
	if !stale || r.writeJSON(&protocol.Message{Type: protocol.TypeTURN}) != nil {
		return
	}
	select {
	case <-fresh:
	case <-time.After(5 * time.Second):
		r.log.Warn("no fresh TURN credentials from the server; using the old ones")
	case <-r.ctx.Done():
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
		p.set.log.Debug("remote candidate ignored", "err", err)
	}
}

// iceServers returns the room's TURN servers, renewing the credentials
// first when they are close to expiry.
func (r *room) iceServers() []protocol.ICEServer {
	r.refreshICE()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ice
}
