package client

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// toSignalCandidate and fromSignalCandidate convert between pion's ICE
// candidate and the signal schema's (same JSON).
func toSignalCandidate(c webrtc.ICECandidateInit) *protocol.ICECandidate {
	return &protocol.ICECandidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

func fromSignalCandidate(c *protocol.ICECandidate) webrtc.ICECandidateInit {
	return webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

// ErrSignalAuth means a signal did not open with the pairwise key, or was a
// replay: the server (or someone in between) tampered with it.
var ErrSignalAuth = errors.New("signal failed authentication (tampered or replayed by the server?)")

// pairFor returns the pairwise channel with a verified member, made once per
// session so signal counters never repeat under one key.
func (r *room) pairFor(member string) (*crypto.Pair, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.pairs[member]; p != nil {
		return p, nil
	}
	m := r.members[member]
	if m == nil {
		return nil, fmt.Errorf("member %s is not a verified member of the room: %w", short8(member), ErrNoMembers)
	}
	p, err := crypto.NewPair(r.keys, r.id, r.ident, member, m.Pub)
	if err != nil {
		return nil, fmt.Errorf("pairwise key with %s: %w", short8(member), err)
	}
	r.pairs[member] = p
	return p, nil
}

// sendSignal seals body for member and hands it to the server to forward.
func (r *room) sendSignal(member string, body *protocol.Signal) error {
	p, err := r.pairFor(member)
	if err != nil {
		return err
	}
	plain, err := protocol.EncodeSignal(body)
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	// Counters must reach the peer in order: seal and write under one lock,
	// or a concurrent signal could overtake and get this one refused as a
	// replay.
	r.signalMu.Lock()
	defer r.signalMu.Unlock()
	sealed, err := p.SealSignal(plain)
	if err != nil {
		return fmt.Errorf("signal: seal: %w", err)
	}
	if len(sealed) > protocol.MaxSignalBytes {
		return fmt.Errorf("signal of %d bytes over the limit: %w", len(sealed), ErrProtocol)
	}
	return r.writeJSON(&protocol.Message{Type: protocol.TypeSignal, To: member, Data: protocol.EncodeB64(sealed)})
}

// handleSignal opens a signal from a member and routes it to its session.
// A signal that fails to open is refused, and the session it may belong to
// is aborted: no connection is made on tampered signalling.
func (r *room) handleSignal(m *protocol.Message) {
	sealed, err := protocol.DecodeB64(m.Data)
	if err != nil || m.From == "" {
		return
	}
	p, err := r.pairFor(m.From)
	if err != nil {
		r.log.Warn("signal from an unverified member refused", "from", m.From)
		return
	}
	plain, err := p.OpenSignal(sealed)
	if err != nil {
		err = fmt.Errorf("from %s: %v: %w", short8(m.From), err, ErrSignalAuth)
		r.log.Warn("signal refused", "err", err)
		r.events.tampered(m.From, err)
		return
	}
	body, err := protocol.DecodeSignal(plain)
	if err != nil {
		r.log.Warn("malformed signal refused", "from", m.From, "err", err)
		return
	}
	if r.presenceSignal(m.From, body) {
		return
	}
	r.events.signal(m.From, body)
}

func short8(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
