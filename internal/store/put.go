package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// eviction is one chunk evicted for space, reported through Config.OnEvict.
type eviction struct {
	it      Item // without Data
	members []string
}

// PutCopy stores the copy of an item that another cluster node admitted
// under the same caps and quotas on its own copy of the relay
// (docs/SCALING.md). It never waits: the events behind the item, which a
// wait would hold up, include the acks that free this copy's space (a node
// applies the stream in order). So it ignores the per-room cap and the
// uploader's quotas, and refuses (ErrFull) only past twice the global
// cap, a bound on what the copies of items whose acks are still on the
// way may hold beyond it.
func (s *Store) PutCopy(it Item, owed []string) (uint64, error) {
	return s.put(context.Background(), it, owed, true)
}

func (s *Store) put(ctx context.Context, it Item, owed []string, isCopy bool) (uint64, error) {
	members := slices.Clone(owed)
	slices.Sort(members)
	members = slices.Compact(members)
	if len(members) == 0 {
		return 0, nil
	}
	size := it.Size()
	if size > s.maxRoom || size > s.maxBytes || size > s.quota.maxSender || (it.Origin != "" && size > s.quota.maxOrigin) {
		return 0, fmt.Errorf("store: item of %d bytes for room %q (caps: room %d, total %d): %w",
			size, it.Room, s.maxRoom, s.maxBytes, ErrTooLarge)
	}
	for {
		now := s.now()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, fmt.Errorf("store: put to room %q: %w", it.Room, ErrClosed)
		}
		var evicted []eviction
		fits, ownQuota := s.fitsLocked(&it, size)
		switch {
		case isCopy:
			if fits = s.bytes+size <= 2*s.maxBytes; !fits {
				s.mu.Unlock()
				return 0, fmt.Errorf("store: no space for a copy of %d bytes in room %q: %w", size, it.Room, ErrFull)
			}
		case !fits:
			evicted, fits = s.evictLocked(&it, size)
		}
		if fits {
			e := &entry{it: it, owed: members}
			e.it.Expires = now.Add(s.ttl)
			id := s.addLocked(s.roomLocked(it.Room), e)
			s.mu.Unlock()
			if s.onEvict != nil {
				for _, ev := range evicted {
					s.onEvict(ev.it, ev.members)
				}
			}
			return id, nil
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		wake := s.space
		s.mu.Unlock()

		if s.waitHook != nil {
			s.waitHook()
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, fmt.Errorf("store: no space for %d bytes in room %q (own quota reached: %t): %w (%w)",
				size, it.Room, !ownQuota, ErrFull, ctx.Err())
		}
	}
}

// fitsLocked reports whether it fits the caps and its uploader's quotas
// now, and whether it fits the quotas. Over its own quota an uploader
// waits for its own items to go (or evicts its own offline-only chunks):
// others' do not help.
func (s *Store) fitsLocked(it *Item, size int64) (fits, ownQuota bool) {
	var roomBytes int64
	if r := s.rooms[it.Room]; r != nil {
		roomBytes = r.bytes
	}
	ownQuota = s.quota.fits(it, size)
	return ownQuota && s.bytes+size <= s.maxBytes && roomBytes+size <= s.maxRoom, ownQuota
}

// wakeLocked wakes every waiting Put (space was freed, an item became
// evictable, or the store closed). It costs nothing when no Put waits.
func (s *Store) wakeLocked() {
	if s.space != nil {
		close(s.space)
		s.space = nil
	}
}

// evictLocked tries to make it (size bytes) fit by evicting offline-only
// chunks, oldest first: from any room while the global cap or the item's
// origin quota is short, else only from its room; a chunk is taken only if
// it frees bytes under a cap still short (global, room, the item's sender
// or origin quota). It evicts nothing unless that makes the item fit, so no
// data is dropped for a Put that would go on waiting anyway.
func (s *Store) evictLocked(it *Item, size int64) ([]eviction, bool) {
	if s.offline == 0 {
		return nil, false
	}
	tr := s.rooms[it.Room]
	n := needs{all: s.bytes + size - s.maxBytes, room: size - s.maxRoom, item: it}
	if tr != nil {
		n.room += tr.bytes
	}
	n.sender, n.origin = s.quota.over(it, size)
	chosen, ok := chooseEvictions(s.evictableChunksLocked(tr, n.all > 0 || n.origin > 0), tr, n)
	if !ok {
		return nil, false
	}
	return s.removeEvictedLocked(chosen, tr), true
}

// needs are the bytes a Put must free under each cap it would exceed.
type needs struct {
	all, room, sender, origin int64
	item                      *Item // the item being put: its room, sender, origin
}

func (n *needs) met() bool { return n.all <= 0 && n.room <= 0 && n.sender <= 0 && n.origin <= 0 }

// take counts candidate c against the needs it helps with, and reports
// whether it helps with any.
func (n *needs) take(c evictCand, tr *room) bool {
	inRoom := c.r == tr
	sameSender := inRoom && c.e.it.Sender == n.item.Sender
	sameOrigin := n.item.Origin != "" && c.e.it.Origin == n.item.Origin
	if n.all <= 0 && !(inRoom && n.room > 0) && !(sameSender && n.sender > 0) && !(sameOrigin && n.origin > 0) {
		return false
	}
	sz := c.e.it.Size()
	n.all -= sz
	if inRoom {
		n.room -= sz
	}
	if sameSender {
		n.sender -= sz
	}
	if sameOrigin {
		n.origin -= sz
	}
	return true
}

// evictCand is a chunk that may be evicted, with its room.
type evictCand struct {
	r *room
	e *entry
}

// evictableChunksLocked lists the evictable chunks of room tr, or of every
// room when all is set, oldest first.
func (s *Store) evictableChunksLocked(tr *room, all bool) []evictCand {
	var cands []evictCand
	scan := func(r *room) {
		if r == nil || r.offline == 0 {
			return
		}
		for _, e := range r.items {
			if e.it.Size() > 0 && s.evictableLocked(r, e) {
				cands = append(cands, evictCand{r, e})
			}
		}
	}
	if all {
		for _, r := range s.rooms {
			scan(r)
		}
	} else {
		scan(tr)
	}
	slices.SortFunc(cands, func(a, b evictCand) int { return cmp.Compare(a.e.it.ID, b.e.it.ID) })
	return cands
}

// chooseEvictions picks candidates, oldest first, each one that frees
// bytes under a cap still short (the global cap, room tr's, the item's
// sender's or origin's quota), until none is; false if they cannot be.
func chooseEvictions(cands []evictCand, tr *room, n needs) ([]evictCand, bool) {
	chosen := cands[:0]
	for _, c := range cands {
		if n.met() {
			break
		}
		if n.take(c, tr) {
			chosen = append(chosen, c)
		}
	}
	return chosen, n.met()
}

// removeEvictedLocked deletes the chosen chunks (and rooms other than tr
// left empty) and returns what OnEvict is to report.
func (s *Store) removeEvictedLocked(chosen []evictCand, tr *room) []eviction {
	out := make([]eviction, 0, len(chosen))
	touched := make(map[*room]struct{}, 1)
	for _, c := range chosen {
		c.e.dead = true
		touched[c.r] = struct{}{}
		it := c.e.it
		it.Data = nil
		out = append(out, eviction{it: it, members: c.e.owed})
	}
	for r := range touched {
		s.filterLocked(r, func(e *entry) bool { return !e.dead })
		if r != tr {
			s.gcRoomLocked(r)
		}
	}
	// space beyond what this Put needs may have been freed.
	s.wakeLocked()
	return out
}
