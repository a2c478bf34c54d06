package client

import (
	"fmt"
	"strings"
)

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
	pair, err := p.set.room.pairFor(p.member)
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
	pair, err := p.set.room.pairFor(p.member)
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
