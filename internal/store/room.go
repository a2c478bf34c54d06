package store

import "fmt"

// entry is one stored item and the members still owed it.
type entry struct {
	it   Item
	owed []string // deduplicated, never empty while stored
	dead bool     // marked for removal by an eviction plan
}

// index returns the position of member in e.owed, or -1.
func (e *entry) index(member string) int {
	for i, m := range e.owed {
		if m == member {
			return i
		}
	}
	return -1
}

func (e *entry) owes(member string) bool { return e.index(member) >= 0 }

// room is the per-room state. Rooms are created on demand and removed from
// Store.rooms as soon as they hold no items and no online-state entries.
type room struct {
	name    string
	items   []*entry // strictly increasing IDs
	bytes   int64
	online  map[string]bool // members marked with SetOnline; absent = online
	offline int             // entries of online that are false
	changed chan struct{}   // closed on the next Put to the room; nil until asked for
}

// after returns the index of the first item with ID > id.
func (r *room) after(id uint64) int {
	lo, hi := 0, len(r.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.items[m].it.ID <= id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// find returns the index of item id.
func (r *room) find(id uint64) (int, bool) {
	if id == 0 {
		return 0, false
	}
	i := r.after(id - 1)
	return i, i < len(r.items) && r.items[i].it.ID == id
}

func notOwed(room, member string, id uint64) error {
	return fmt.Errorf("store: ack of item %d by %q in room %q: %w", id, member, room, ErrNotOwed)
}

// roomLocked returns room name, creating it.
func (s *Store) roomLocked(name string) *room {
	r := s.rooms[name]
	if r == nil {
		r = &room{name: name}
		s.rooms[name] = r
	}
	return r
}

// gcRoomLocked forgets r if it holds nothing worth keeping. A pending Changed
// channel is closed so its waiters look again (they get a fresh channel).
func (s *Store) gcRoomLocked(r *room) {
	if len(r.items) > 0 || len(r.online) > 0 {
		return
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
}

// addLocked appends e to r with the next id.
func (s *Store) addLocked(r *room, e *entry) uint64 {
	s.lastID++
	e.it.ID = s.lastID
	if len(r.items) == 0 {
		s.nonEmpty++
	}
	r.items = append(r.items, e)
	size := e.it.Size()
	r.bytes += size
	s.bytes += size
	s.items++
	s.quota.add(&e.it, size)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	return e.it.ID
}

// forgetLocked accounts for e leaving r (the slice is handled by the caller).
func (s *Store) forgetLocked(r *room, e *entry) {
	size := e.it.Size()
	r.bytes -= size
	s.bytes -= size
	s.items--
	s.quota.add(&e.it, -size)
	e.it.Data = nil
}

// removeAtLocked deletes r.items[i].
func (s *Store) removeAtLocked(r *room, i int) {
	s.forgetLocked(r, r.items[i])
	if len(r.items) == 1 {
		r.items[0] = nil
		r.items = r.items[:0] // keep the array for the next Put
		s.nonEmpty--
		return
	}
	if i == 0 {
		// acks mostly come in id order: slide the window, append reclaims.
		r.items[0] = nil
		r.items = r.items[1:]
	} else {
		copy(r.items[i:], r.items[i+1:])
		r.items[len(r.items)-1] = nil
		r.items = r.items[:len(r.items)-1]
	}
}

// filterLocked keeps the items of r for which keep returns true, deletes the
// others and returns how many it deleted. It does not wake or gc.
func (s *Store) filterLocked(r *room, keep func(*entry) bool) int {
	if len(r.items) == 0 {
		return 0
	}
	kept := r.items[:0]
	for _, e := range r.items {
		if keep(e) {
			kept = append(kept, e)
		} else {
			s.forgetLocked(r, e)
		}
	}
	n := len(r.items) - len(kept)
	clear(r.items[len(kept):])
	r.items = kept
	if len(kept) == 0 {
		s.nonEmpty--
	}
	return n
}

// evictableLocked reports whether e is a chunk whose every remaining owed
// member is marked offline in r.
func (s *Store) evictableLocked(r *room, e *entry) bool {
	if e.it.Kind != KindChunk || r.offline == 0 || len(e.owed) == 0 {
		return false
	}
	for _, m := range e.owed {
		if online, known := r.online[m]; !known || online {
			return false
		}
	}
	return true
}
