package client

import (
	"errors"
	"sync"
	"time"

	"cloakroom/client/transfer"
	"cloakroom/internal/protocol"
)

// Relay first (docs/TRANSFERS.md): with Transport auto a send does not wait
// for the peer-to-peer ladder. A recipient not connected within RelayWait
// starts on the relay store at once; when a session with it connects later,
// the session takes the rest of the file over mid-file: the relay upload
// stops (once every recipient it serves has a session), the chunks already
// committed to the relay reach the recipient that way, and the session
// carries the others — no chunk is sent twice. Like Tailscale's DERP:
// start relayed, upgrade to direct.

const (
	// DefaultRelayWait is how long a send waits for a peer-to-peer session
	// before a recipient starts on the relay. On a LAN a direct session is
	// up well within it, so the relay carries nothing.
	DefaultRelayWait = 500 * time.Millisecond
	// DefaultRungStagger is how long a rung of the ladder has before the
	// next one starts beside it.
	DefaultRungStagger = 2 * time.Second
)

// errTakenOver ends a relay upload whose recipients all have a
// peer-to-peer session now.
var errTakenOver = errors.New("every recipient of the relay upload has a peer-to-peer session now")

// relayLeg is the relay store's part of a relay-first send: the recipients
// it started with, which of them a session took over since, and the chunks
// its upload committed to. The peer-to-peer goroutines and the upload meet
// here, under mu, so a chunk is either committed to the relay before a
// take-over (and left out of the session's picks) or never uploaded.
type relayLeg struct {
	chunks uint32

	mu       sync.Mutex
	p2p      map[string]bool // recipients with a session (before or after the relay started)
	settled  map[string]bool // recipients whose rungs all ended (a session, or none)
	targets  map[string]bool // recipients started on the relay
	taken    map[string]bool // targets a session took over
	stopped  bool            // every target taken over: upload no more
	uploaded transfer.Bits   // chunks committed to the relay
	changed  chan struct{}   // a target was taken over (capacity 1)
	sched    *transfer.Schedule
}

// attach gives the leg the upload's schedule: a recipient taken over
// leaves its window, so the upload neither waits for it nor stalls when it
// was the last.
func (l *relayLeg) attach(s *transfer.Schedule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sched = s
	for m := range l.taken {
		s.Note(&protocol.Message{Type: protocol.TypeUndeliverable, Member: m})
	}
}

func newRelayLeg(chunks uint32) *relayLeg {
	return &relayLeg{chunks: chunks, p2p: map[string]bool{}, settled: map[string]bool{}, targets: map[string]bool{}, taken: map[string]bool{},
		uploaded: transfer.NewBits(chunks), changed: make(chan struct{}, 1)}
}

// begin makes members (those without a session yet) the relay's
// recipients and returns them.
func (l *relayLeg) begin(members []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range members {
		if !l.p2p[m] {
			l.targets[m] = true
			out = append(out, m)
		}
	}
	return out
}

// takeOver records that member has a session. If the relay serves it, the
// session takes over and gets the chunks the relay carries to it (to leave
// out of its picks): those committed so far when member was the relay's
// last recipient (the upload stops), else every chunk (the upload goes on
// for the others, and member gets it all through the relay too). nil: the
// relay does not serve member.
func (l *relayLeg) takeOver(member string) transfer.Bits {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p2p[member] = true
	if !l.targets[member] || l.taken[member] {
		return nil
	}
	l.taken[member] = true
	if l.sched != nil {
		l.sched.Note(&protocol.Message{Type: protocol.TypeUndeliverable, Member: member})
	}
	select {
	case l.changed <- struct{}{}:
	default:
	}
	for m := range l.targets {
		if !l.taken[m] {
			all := transfer.NewBits(l.chunks)
			all.SetRange(0, l.chunks)
			return all
		}
	}
	l.stopped = true
	return append(transfer.Bits(nil), l.uploaded...)
}

// settle records that member's rungs ended (a session, or none).
func (l *relayLeg) settle(member string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settled[member] = true
}

// racing reports whether a relay recipient's rungs are still trying: the
// signals that set them up share the connection to the server with the
// upload, so the upload then keeps a short window (racingWindow) and the
// signals do not wait behind megabytes of chunks.
func (l *relayLeg) racing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for m := range l.targets {
		if !l.settled[m] {
			return true
		}
	}
	return false
}

// racingWindow bounds the relay upload, ahead of the slowest recipient,
// while a relay recipient's rungs are still trying.
const racingWindow = 3 << 20

// commit reserves chunk i for the relay upload; false once a take-over
// stopped it.
func (l *relayLeg) commit(i uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.uploaded.Set(i)
	return true
}

// isTaken reports whether a session took member over from the relay.
func (l *relayLeg) isTaken(member string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.taken[member]
}
