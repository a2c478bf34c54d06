package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
)

// SignalKind names what an end-to-end signal carries.
type SignalKind string

// Signal kinds. A client ignores kinds it does not know.
const (
	SignalOffer     SignalKind = "offer"     // SDP offer of a new session, with its Mode
	SignalAnswer    SignalKind = "answer"    // SDP answer
	SignalCandidate SignalKind = "candidate" // one trickled ICE candidate
	SignalDecline   SignalKind = "decline"   // the answerer will not connect (Reason)
	SignalBye       SignalKind = "bye"       // the session is over
	SignalHave      SignalKind = "have"      // receiver -> sender: chunks held (resume)
	SignalPing      SignalKind = "ping"      // presence challenge: Session is a fresh nonce
	SignalPong      SignalKind = "pong"      // the answer to a ping, with its Session
	SignalLib       SignalKind = "lib"       // v4: a library entry the author holds (Env, Have, Done)
	SignalHist      SignalKind = "hist"      // v4: recent chat envelopes for a newcomer (Items)
	SignalName      SignalKind = "name"      // the sender's display name (Name)
	SignalXfer      SignalKind = "xfer"      // transfer control about one file (File, Op)
)

// XferOp is what an xfer signal says (docs/PROTOCOL.md "Transfer control").
// From a file's origin to a recipient: cancel. From a recipient to the
// origin: cancel, decline, ask (its user is asked to accept), accept. A
// client ignores ops it does not know.
type XferOp string

// Xfer ops.
const (
	XferCancel  XferOp = "cancel"
	XferDecline XferOp = "decline"
	XferAsk     XferOp = "ask"
	XferAccept  XferOp = "accept"
)

// Reasons a receiver's failed DC_DONE carries for a choice, not an error.
const (
	ReasonCancelled = "cancelled by the receiver"
	ReasonDeclined  = "declined by the receiver"
)

// HistItem is one chat envelope of a hist signal, as its author sealed it.
type HistItem struct {
	From string `json:"from"` // the author (member id)
	Env  string `json:"env"`  // base64url of the sealed envelope
}

// ICECandidate is a trickled ICE candidate, with the JSON field names of
// WebRTC's RTCIceCandidateInit (and pion's webrtc.ICECandidateInit).
type ICECandidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Signal is the plaintext of a sealed signal between two members (sealed
// with their pairwise key; the server forwards it unread). See
// docs/PROTOCOL.md, "Peer-to-peer sessions".
type Signal struct {
	Kind    SignalKind `json:"kind"`
	Session string     `json:"session"`        // one peer-connection attempt (for have: the file)
	Mode    Mode       `json:"mode,omitempty"` // offer: the rung, which the answerer uses too
	SDP     string     `json:"sdp,omitempty"`
	// Candidate is a trickled ICE candidate (kind candidate).
	Candidate *ICECandidate `json:"candidate,omitempty"`
	// Reason says why (decline; free text for the user, never parsed).
	Reason string `json:"reason,omitempty"`
	// have (receiver -> sender of a relay file): the chunks it already holds
	// as [lo, hi) ranges, or Done once it has verified the whole file.
	File string      `json:"file,omitempty"`
	Have [][2]uint32 `json:"have,omitempty"`
	Done bool        `json:"done,omitempty"`
	// lib: the entry's origin, chunk count and sealed manifest envelope
	// (File, Have and Done say what the author holds).
	Origin string `json:"origin,omitempty"`
	Chunks uint32 `json:"chunks,omitempty"`
	Env    string `json:"env,omitempty"`
	// hist: chat envelopes, oldest first.
	Items []HistItem `json:"items,omitempty"`
	// name: the sender's display name, chosen by its user: neither unique
	// nor verified; shown cleaned (safetext) and at most MaxNameChars.
	Name string `json:"name,omitempty"`
	// xfer: what is said about File.
	Op XferOp `json:"op,omitempty"`
}

// MaxNameBytes bounds a name signal's name; a receiver shows at most
// MaxNameChars characters of it, control characters removed.
const (
	MaxNameBytes = 256
	MaxNameChars = 40
)

// MaxXferOp bounds an xfer signal's op.
const MaxXferOp = 32

// MaxSignalSession bounds a signal's session id.
const MaxSignalSession = 64

// ErrSignal means an opened signal is malformed.
var ErrSignal = errors.New("malformed signal")

// DecodeSignal parses and validates an opened signal. A kind it does not
// know is returned as is, for the caller to ignore.
func DecodeSignal(plain []byte) (*Signal, error) {
	var s Signal
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignal, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks the fields each kind needs.
func (s *Signal) Validate() error {
	if s.Session == "" || len(s.Session) > MaxSignalSession {
		return fmt.Errorf("%w: session of %d bytes", ErrSignal, len(s.Session))
	}
	switch s.Kind {
	case SignalOffer:
		if !s.Mode.Valid() {
			return fmt.Errorf("%w: offer with mode %q", ErrSignal, s.Mode)
		}
		if s.SDP == "" {
			return fmt.Errorf("%w: offer without SDP", ErrSignal)
		}
	case SignalAnswer:
		if s.SDP == "" {
			return fmt.Errorf("%w: answer without SDP", ErrSignal)
		}
	case SignalCandidate:
		if s.Candidate == nil {
			return fmt.Errorf("%w: candidate signal without a candidate", ErrSignal)
		}
	case SignalHave:
		if s.File == "" {
			return fmt.Errorf("%w: have without a file", ErrSignal)
		}
		return validRanges(s.Have)
	case SignalLib:
		if s.File == "" || s.Origin == "" || s.Env == "" || s.Chunks == 0 || s.Chunks > MaxChunks {
			return fmt.Errorf("%w: lib without file, origin, envelope or chunk count", ErrSignal)
		}
		return validRanges(s.Have)
	case SignalName:
		if s.Name == "" || len(s.Name) > MaxNameBytes {
			return fmt.Errorf("%w: name of %d bytes", ErrSignal, len(s.Name))
		}
	case SignalXfer:
		if s.File == "" || s.Op == "" || len(s.Op) > MaxXferOp {
			return fmt.Errorf("%w: xfer without a file or op", ErrSignal)
		}
	case SignalHist:
		if len(s.Items) == 0 || len(s.Items) > HistoryLength {
			return fmt.Errorf("%w: hist with %d items", ErrSignal, len(s.Items))
		}
		for _, it := range s.Items {
			if it.From == "" || it.Env == "" {
				return fmt.Errorf("%w: hist item without author or envelope", ErrSignal)
			}
		}
	}
	return nil
}

func validRanges(rs [][2]uint32) error {
	if len(rs) > MaxHaveRanges {
		return fmt.Errorf("%w: %d have ranges", ErrSignal, len(rs))
	}
	for _, r := range rs {
		if r[0] >= r[1] || r[1] > MaxChunks {
			return fmt.Errorf("%w: have range [%d,%d)", ErrSignal, r[0], r[1])
		}
	}
	return nil
}

// EncodeSignal validates s and returns its JSON, to be sealed.
func EncodeSignal(s *Signal) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}
