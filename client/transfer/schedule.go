package transfer

import (
	"fmt"
	"sync"

	"cloakroom/internal/protocol"
)

// Schedule decides which chunks one round of a relay upload sends, and
// when: chunks every recipient holds already (their have signals) are
// skipped, and the upload stays within a window of the slowest online
// recipient. Server events and have signals feed it from the read loop.
type Schedule struct {
	chunks uint32
	moved  chan struct{} // a recipient progressed or went away (capacity 1)
	heard  chan struct{} // closed once every recipient said what it holds

	mu      sync.Mutex
	targets map[string]bool     // the round's recipients
	haves   map[string]*haveMap // chunks a recipient said it holds
	acked   map[string]uint32   // chunks of this round a recipient acked
	away    map[string]bool     // recipients offline or finished
	done    map[string]bool     // recipients finished: delivered, undeliverable, or taken over
}

// NewSchedule makes the schedule of a round of chunks for recipients. A
// recipient's have signal may overtake the server's acceptance: it is taken
// from every member asked, until Narrow.
func NewSchedule(chunks uint32, recipients []string) *Schedule {
	s := &Schedule{chunks: chunks, moved: make(chan struct{}, 1), heard: make(chan struct{}), targets: map[string]bool{},
		haves: map[string]*haveMap{}, acked: map[string]uint32{}, away: map[string]bool{}, done: map[string]bool{}}
	for _, m := range recipients {
		s.targets[m] = true
	}
	return s
}

// Narrow keeps only the recipients the server accepted.
func (s *Schedule) Narrow(accepted []string) {
	targets := map[string]bool{}
	for _, m := range accepted {
		targets[m] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = targets
	for m := range s.haves {
		if !targets[m] {
			delete(s.haves, m)
		}
	}
	s.heardLocked()
}

// IsTarget reports whether member is a recipient of the round.
func (s *Schedule) IsTarget(member string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targets[member]
}

// SetHave records the chunks member holds, as [lo, hi) ranges.
func (s *Schedule) SetHave(member string, ranges [][2]uint32) error {
	h := newHaveMap(s.chunks)
	for _, r := range ranges {
		if r[0] >= r[1] || r[1] > s.chunks {
			return fmt.Errorf("have range [%d, %d) of %d chunks: %w", r[0], r[1], s.chunks, ErrIntegrity)
		}
		for i := r[0]; i < r[1]; i++ {
			h.set(i)
		}
	}
	s.mu.Lock()
	s.haves[member] = h
	s.heardLocked()
	s.mu.Unlock()
	return nil
}

// heardLocked closes heard once every recipient sent its have signal.
func (s *Schedule) heardLocked() {
	for m := range s.targets {
		if s.haves[m] == nil {
			return
		}
	}
	select {
	case <-s.heard:
	default:
		close(s.heard)
	}
}

// Heard is closed once every recipient said which chunks it holds (a
// recipient holding none says nothing: callers wait for it briefly).
func (s *Schedule) Heard() <-chan struct{} { return s.heard }

// Note records a server event (progress, delivered, undeliverable, presence)
// that moves the upload window.
func (s *Schedule) Note(m *protocol.Message) {
	s.mu.Lock()
	switch m.Type {
	case protocol.TypeProgress:
		s.acked[m.Member] = max(s.acked[m.Member], m.Acked)
	case protocol.TypeDelivered, protocol.TypeUndeliverable:
		s.away[m.Member], s.done[m.Member] = true, true
	case protocol.TypePresence:
		// A finished recipient stays out of the window when it comes back
		// online: the server counts no more of its acks (in a cluster, a
		// member whose node died is offline on the others until it is back
		// on another node, and may have been judged undeliverable meanwhile).
		s.away[m.Member] = s.done[m.Member] || m.Event != protocol.EventOnline
	}
	s.mu.Unlock()
	select {
	case s.moved <- struct{}{}:
	default:
	}
}

// Moved gets a token whenever Note may have moved the window.
func (s *Schedule) Moved() <-chan struct{} { return s.moved }

// Lagging reports whether the upload, n chunks into this round, is a whole
// window ahead of some online recipient.
func (s *Schedule) Lagging(n uint32, window uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range s.targets {
		if !s.away[m] && n > s.acked[m]+window {
			return true
		}
	}
	return false
}

// AllHave reports whether every recipient said it holds chunk i.
func (s *Schedule) AllHave(i uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.haves) < len(s.targets) {
		return false
	}
	for m := range s.targets {
		h := s.haves[m]
		if h == nil || !h.has(i) {
			return false
		}
	}
	return true
}
