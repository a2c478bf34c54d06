package protocol

import (
	"errors"
	"fmt"
	"time"
)

// Stamp is what a sender seals inside every chat and manifest plaintext so
// that receivers can judge a message the server handed them: who sent it in
// which session, at which place in that session, and when
// (docs/SECURITY.md, "Replay and order"). The server never sees it.
type Stamp struct {
	// Session is 32 lowercase hex characters, random for each sender
	// session (a CLI process, a page's stay in the room).
	Session string `json:"sess"`
	// Seq counts the sender's sealed messages in the session from 1.
	Seq uint64 `json:"seq"`
	// Time is the sender's clock when it sealed the message, unix ms.
	Time int64 `json:"ts"`
}

// ErrStamp reports a malformed stamp.
var ErrStamp = errors.New("protocol: bad stamp")

// Validate checks the stamp's form.
func (s Stamp) Validate() error {
	switch {
	case len(s.Session) != 32 || !isLowerHex(s.Session):
		return fmt.Errorf("%w: session must be 32 hex characters", ErrStamp)
	case s.Seq == 0 || s.Seq > 1<<53:
		return fmt.Errorf("%w: seq %d out of range", ErrStamp, s.Seq)
	case s.Time <= 0 || s.Time > 1<<53:
		return fmt.Errorf("%w: time %d out of range", ErrStamp, s.Time)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Verdict is a receiver's judgement of one stamped message.
type Verdict string

const (
	// InOrder: the next message of its session.
	InOrder Verdict = "in-order"
	// AfterGap: newer than the next expected; Judgement.Missing messages of
	// the session were not seen before it (shown as a gap).
	AfterGap Verdict = "after-gap"
	// Late: fills an earlier gap; shown in its place, marked late.
	Late Verdict = "late"
	// Duplicate: seen before (a redelivery or a replay); dropped.
	Duplicate Verdict = "duplicate"
	// Replayed: sealed before the receiver joined (beyond OrderSkew), so no
	// relay owed it to this receiver; dropped and reported.
	Replayed Verdict = "replayed"
)

// Judgement is a Verdict and, for AfterGap, how many messages are missing.
type Judgement struct {
	Verdict Verdict `json:"verdict"`
	Missing uint64  `json:"missing,omitempty"`
}

const (
	// OrderSkew is the clock difference between members a receiver
	// tolerates when it compares a stamp with its own join time.
	OrderSkew = 2 * time.Minute
	// orderWindow bounds the gaps a session remembers: a message more
	// than this far behind the newest is judged a duplicate.
	orderWindow = 1024
	// orderSessions bounds the sessions remembered per sender.
	orderSessions = 16
)

// Order judges the stamped messages one receiver gets. Memory is bounded:
// orderSessions sessions per sender, orderWindow sequence numbers per
// session. The caller bounds the number of senders (the room's members).
// Not safe for concurrent use.
type Order struct {
	joined  int64 // unix ms
	senders map[string]*senderOrder
}

type senderOrder struct {
	sessions map[string]*sessionOrder
	recent   []string // session ids, oldest first
}

// sessionOrder: of the seqs from first up to next, every one was seen
// except those in missing; of those below first (sent before this receiver
// first heard of the session), the ones in early arrived since.
type sessionOrder struct {
	first, next uint64
	missing     map[uint64]bool
	early       map[uint64]bool
}

// NewOrder returns an Order for a receiver that joined the room at joined.
func NewOrder(joined time.Time) *Order {
	return &Order{joined: joined.UnixMilli(), senders: make(map[string]*senderOrder)}
}

// Baseline records that sender's session had sent through seq when it
// answered this receiver's presence challenge, so a later message after
// seq+1 shows the gap. It never moves a session backwards.
func (o *Order) Baseline(sender, session string, seq uint64) {
	ss, known := o.lookup(sender, session)
	if !known {
		ss = o.session(sender, session, seq+1)
	}
	ss.next = max(ss.next, seq+1)
}

// Judge returns the verdict on a message with stamp st from sender and
// records it as seen. st must have passed Validate.
func (o *Order) Judge(sender string, st Stamp) Judgement {
	sealedBeforeJoin := st.Time < o.joined-OrderSkew.Milliseconds()
	ss, known := o.lookup(sender, st.Session)
	switch {
	case !known && sealedBeforeJoin:
		return Judgement{Verdict: Replayed}
	case !known:
		// A session's first message here: earlier ones may predate this
		// receiver, or still be on their way.
		o.session(sender, st.Session, st.Seq).next = st.Seq + 1
		return Judgement{Verdict: InOrder}
	case st.Seq == ss.next:
		ss.next++
		return Judgement{Verdict: InOrder}
	case st.Seq > ss.next:
		missing := st.Seq - ss.next
		for s := max(ss.next, st.Seq-min(missing, orderWindow)); s < st.Seq; s++ {
			ss.missing[s] = true
		}
		ss.next = st.Seq + 1
		ss.trim()
		return Judgement{Verdict: AfterGap, Missing: missing}
	case ss.missing[st.Seq]:
		delete(ss.missing, st.Seq)
		return Judgement{Verdict: Late}
	case st.Seq >= ss.first || ss.early[st.Seq] || ss.first-st.Seq > orderWindow:
		return Judgement{Verdict: Duplicate}
	case sealedBeforeJoin:
		return Judgement{Verdict: Replayed}
	default:
		ss.early[st.Seq] = true
		return Judgement{Verdict: Late}
	}
}

func (o *Order) lookup(sender, session string) (*sessionOrder, bool) {
	so := o.senders[sender]
	if so == nil {
		return nil, false
	}
	ss := so.sessions[session]
	return ss, ss != nil
}

// session creates sender's session, first heard of at seq first, and
// forgets the sender's oldest session beyond orderSessions.
func (o *Order) session(sender, session string, first uint64) *sessionOrder {
	so := o.senders[sender]
	if so == nil {
		so = &senderOrder{sessions: make(map[string]*sessionOrder)}
		o.senders[sender] = so
	}
	ss := &sessionOrder{first: first, next: first, missing: make(map[uint64]bool), early: make(map[uint64]bool)}
	so.sessions[session] = ss
	so.recent = append(so.recent, session)
	if len(so.recent) > orderSessions {
		delete(so.sessions, so.recent[0])
		so.recent = so.recent[1:]
	}
	return ss
}

// trim forgets gaps more than orderWindow behind the newest message.
func (ss *sessionOrder) trim() {
	if len(ss.missing) <= orderWindow {
		return
	}
	for s := range ss.missing {
		if s+orderWindow < ss.next {
			delete(ss.missing, s)
		}
	}
}
