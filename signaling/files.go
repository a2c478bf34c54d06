package signaling

import (
	"slices"
	"time"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// fileState tracks one file sent through the relay: who it is owed to and
// how far each recipient got. Guarded by Server.mu.
type fileState struct {
	id, sender string
	chunks     uint32
	order      []string // recipients as listed in file_ok
	recips     map[string]*recipient
	touched    time.Time // last upload or ack
}

// recipient is one member's progress on a file.
type recipient struct {
	acked spans  // chunk indices acked (a resent chunk counts once)
	count uint32 // acked chunks, including those of unknown index
	done  bool   // delivered or undeliverable: nothing more to report
}

func newFile(id, sender string, chunks uint32, recips []string, now time.Time) *fileState {
	f := &fileState{id: id, sender: sender, chunks: chunks, order: recips,
		recips: make(map[string]*recipient, len(recips)), touched: now}
	for _, m := range recips {
		f.recips[m] = &recipient{}
	}
	return f
}

// pending lists the recipients still owed chunks of f.
func (f *fileState) pending() []string {
	var out []string
	for _, m := range f.order {
		if !f.recips[m].done {
			out = append(out, m)
		}
	}
	return out
}

func (f *fileState) finished() bool {
	for _, r := range f.recips {
		if !r.done {
			return false
		}
	}
	return true
}

// undeliverableLocked marks member as never getting all of f and tells the
// sender, once.
func (s *Server) undeliverableLocked(r *room, f *fileState, member, why string) {
	rc := f.recips[member]
	if rc == nil || rc.done {
		return
	}
	rc.done = true
	s.sendToLocked(r, f.sender, &protocol.Message{Type: protocol.TypeUndeliverable,
		File: f.id, Member: member, Error: why})
}

// onEvict is the relay store's Config.OnEvict: chunk it was evicted for
// space while every member in members was offline, so those members will not
// get the whole file. Safe for concurrent use.
func (s *Server) onEvict(it store.Item, members []string) {
	if it.Kind != store.KindChunk {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[it.Room]
	if r == nil {
		return
	}
	f := r.files[it.File]
	if f == nil || f.sender != it.Sender {
		return
	}
	for _, m := range members {
		s.undeliverableLocked(r, f, m, "relay full while the member was offline; chunks evicted")
	}
}

// chunkAck is one acked chunk item; index is valid when known.
type chunkAck struct {
	file  string
	index uint32
	known bool
}

// chunksAcked counts acked chunks for c's member and reports progress and
// delivery to the senders.
func (s *Server) chunksAcked(c *conn, acks []chunkAck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.currentLocked(c) {
		s.countAcksLocked(c.room, c.mem.id, acks)
	}
}

// countAcksLocked counts chunks of r acked by member me (here or on another
// node) and reports progress and delivery to the senders connected here.
func (s *Server) countAcksLocked(r *room, me string, acks []chunkAck) {
	now := s.now()
	for _, a := range acks {
		f := r.files[a.file]
		if f == nil {
			continue
		}
		rc := f.recips[me]
		if rc == nil || rc.done || (a.known && (a.index >= f.chunks || !rc.acked.add(a.index))) {
			continue
		}
		rc.count++
		f.touched = now
		if rc.count%progressEvery == 0 || rc.count >= f.chunks {
			s.sendToLocked(r, f.sender, &protocol.Message{Type: protocol.TypeProgress,
				File: f.id, Member: me, Acked: rc.count})
		}
		if rc.count >= f.chunks {
			rc.done = true
			s.sendToLocked(r, f.sender, &protocol.Message{Type: protocol.TypeDelivered, File: f.id, Member: me})
		}
	}
}

// sweepFilesLocked drops file states that are finished, whose sender is
// gone, or idle longer than the relay TTL (their items have expired:
// recipients still waiting are reported undeliverable).
func (s *Server) sweepFilesLocked(r *room, now time.Time) {
	for id, f := range r.files {
		idle := now.Sub(f.touched) > s.cfg.Relay.TTL
		if idle {
			for _, m := range f.order {
				s.undeliverableLocked(r, f, m, "relay TTL expired before the member got the file")
			}
		}
		if idle || f.finished() || r.members[f.sender] == nil {
			delete(r.files, id)
		}
	}
}

// spans is a set of uint32 as sorted, disjoint, non-adjacent [lo, hi)
// ranges: in-order acks keep it at one range.
type spans []span

type span struct{ lo, hi uint32 }

// add inserts i and reports whether it was new.
func (p *spans) add(i uint32) bool {
	s := *p
	// first span with hi >= i (i may extend it at its end or lie inside)
	k, _ := slices.BinarySearchFunc(s, i, func(sp span, v uint32) int {
		if sp.hi < v {
			return -1
		}
		return 1
	})
	switch {
	case k < len(s) && s[k].lo <= i && i < s[k].hi:
		return false
	case k < len(s) && s[k].hi == i:
		s[k].hi++
		if k+1 < len(s) && s[k+1].lo == s[k].hi {
			s[k].hi = s[k+1].hi
			s = slices.Delete(s, k+1, k+2)
		}
	case k < len(s) && s[k].lo == i+1:
		s[k].lo--
	default:
		s = slices.Insert(s, k, span{i, i + 1})
	}
	*p = s
	return true
}
