// Package store is Cloakroom's in-memory relay store: it holds sealed items
// (message envelopes and file chunks) for the members they are owed to, and
// never decrypts or writes anything to disk.
//
// Rules (DESIGN.md "The relay store"):
//   - every item records the members it is owed to; it is deleted as soon as
//     all of them have acknowledged it, or when its TTL expires;
//   - global and per-room byte caps bound memory; Put waits for space
//     (back-pressure) and returns ErrFull when its context ends first;
//   - accepted data is never dropped before its TTL, with one exception made
//     visible to the caller: when a Put is waiting for space, chunk items
//     (KindChunk) whose every remaining owed member is offline (SetOnline) may
//     be evicted, and Config.OnEvict reports each one, so the server can tell
//     the sender which member will not get that file.
//   - the clock is injectable (Config.Now) so TTL is tested without sleeping.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors returned by the store.
var (
	// ErrFull means the relay has no room for the item; the caller may retry.
	ErrFull = errors.New("relay full")
	// ErrTooLarge means the item alone is bigger than a cap.
	ErrTooLarge = errors.New("item larger than relay cap")
	// ErrNotOwed means an ack names an item that is not (or no longer) owed
	// to that member.
	ErrNotOwed = errors.New("item not owed to member")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store closed")
)

// Kind says what an item holds.
type Kind uint8

// Item kinds.
const (
	KindEnvelope Kind = 1 // a sealed message envelope (chat or file manifest)
	KindChunk    Kind = 2 // a sealed file chunk
)

// Config sets the store's limits. Zero fields get defaults (Fill).
type Config struct {
	MaxBytes     int64 // global cap on stored bytes; default DefaultMaxBytes
	MaxRoomBytes int64 // per-room cap; default DefaultRoomCap(MaxBytes), never over MaxBytes
	// MaxOriginBytes caps what the uploads of one Item.Origin (a client
	// address) hold, all rooms together; MaxSenderBytes what one member of
	// one room holds. Defaults DefaultOriginCap and DefaultSenderCap of
	// MaxBytes; never over MaxRoomBytes. An outsider can make rooms, so
	// only these keep one address from taking the store from the others.
	MaxOriginBytes int64
	MaxSenderBytes int64
	TTL            time.Duration // how long an item lives unacknowledged; default DefaultTTL
	Now            func() time.Time
	// OnEvict, if set, is called (without the store's lock held) for every
	// chunk evicted for space before its TTL, with the offline members that
	// were still owed it.
	OnEvict func(it Item, members []string)
}

// Defaults for zero Config fields.
const (
	DefaultMaxBytes = 256 << 20
	DefaultTTL      = 10 * time.Minute
)

// DefaultRoomCap is the per-room cap for a global cap of total: half of it,
// so that one room cannot take the whole relay.
func DefaultRoomCap(total int64) int64 { return max(total/2, 1) }

// DefaultOriginCap is the per-address cap for a global cap of total: a
// quarter, so that one address, however many rooms it makes, leaves three
// quarters to the others.
func DefaultOriginCap(total int64) int64 { return max(total/4, 1) }

// DefaultSenderCap is the per-member cap for a global cap of total: an
// eighth, at least 32 MiB (a relay sender keeps at most 16 MiB ahead of its
// slowest recipient), never over total.
func DefaultSenderCap(total int64) int64 { return min(max(total/8, 32<<20), total) }

// Fill validates c and fills its zero fields with the defaults; New does
// it, and callers that need the effective values (a server reporting its
// cap) may do it first.
func (c *Config) Fill() error {
	switch {
	case c.MaxBytes < 0:
		return fmt.Errorf("store: negative MaxBytes %d", c.MaxBytes)
	case c.MaxRoomBytes < 0:
		return fmt.Errorf("store: negative MaxRoomBytes %d", c.MaxRoomBytes)
	case c.MaxOriginBytes < 0 || c.MaxSenderBytes < 0:
		return fmt.Errorf("store: negative MaxOriginBytes %d or MaxSenderBytes %d", c.MaxOriginBytes, c.MaxSenderBytes)
	case c.TTL < 0:
		return fmt.Errorf("store: negative TTL %v", c.TTL)
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxRoomBytes == 0 {
		c.MaxRoomBytes = DefaultRoomCap(c.MaxBytes)
	}
	c.MaxRoomBytes = min(c.MaxRoomBytes, c.MaxBytes)
	if c.MaxOriginBytes == 0 {
		c.MaxOriginBytes = DefaultOriginCap(c.MaxBytes)
	}
	if c.MaxSenderBytes == 0 {
		c.MaxSenderBytes = DefaultSenderCap(c.MaxBytes)
	}
	c.MaxOriginBytes = min(c.MaxOriginBytes, c.MaxBytes)
	c.MaxSenderBytes = min(c.MaxSenderBytes, c.MaxRoomBytes)
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Item is one stored element. The store treats Data as opaque sealed bytes.
type Item struct {
	ID      uint64 // assigned by Put; strictly increasing across the store
	Room    string
	Sender  string // member id of the uploader
	Origin  string // the uploader's address, counted against MaxOriginBytes ("": not counted)
	Kind    Kind
	File    string // file id for chunks and file manifests, else ""
	Data    []byte
	Expires time.Time
}

// Size is the number of bytes the item counts against the caps.
func (it *Item) Size() int64 { return int64(len(it.Data)) }

// Stats describes what the store holds.
type Stats struct {
	Bytes int64
	Items int
	Rooms int
}

// Store is the relay store. It is safe for concurrent use.
type Store struct {
	maxBytes int64
	maxRoom  int64
	quota    quota // per origin and per sender
	ttl      time.Duration
	now      func() time.Time
	onEvict  func(Item, []string)

	mu       sync.RWMutex
	rooms    map[string]*room
	bytes    int64 // stored bytes, all rooms
	items    int   // stored items, all rooms
	nonEmpty int   // rooms holding at least one item
	offline  int   // members marked offline, all rooms (0: nothing evictable)
	lastID   uint64
	space    chan struct{} // closed when space may have appeared; nil if no Put waits
	closed   bool
	done     chan struct{} // closed by Close

	// waitHook, if set (tests only), is called by Put each time it is about
	// to block, after it has registered for wake-ups and released the lock.
	waitHook func()
}

// New validates cfg, fills defaults and returns an empty store.
func New(cfg Config) (*Store, error) {
	if err := cfg.Fill(); err != nil {
		return nil, err
	}
	return &Store{
		maxBytes: cfg.MaxBytes,
		maxRoom:  cfg.MaxRoomBytes,
		quota:    newQuota(cfg.MaxOriginBytes, cfg.MaxSenderBytes),
		ttl:      cfg.TTL,
		now:      cfg.Now,
		onEvict:  cfg.OnEvict,
		rooms:    make(map[string]*room),
		done:     make(chan struct{}),
	}, nil
}

// Put stores it (Room, Sender, Kind, File, Data; ID and Expires are set by
// the store) owed to the given members, and returns its id. An item owed to
// nobody is not stored (id 0, nil error). While its origin's or sender's
// quota would be exceeded, Put waits for that uploader's own items to go;
// while the global or the room's cap would be exceeded, Put waits for acks or expiry to free space (after
// evicting offline-only chunks, see package doc); it returns an error wrapping
// ErrFull if ctx ends first, ErrTooLarge if the item can never fit.
func (s *Store) Put(ctx context.Context, it Item, owed []string) (uint64, error) {
	return s.put(ctx, it, owed, false)
}

// Next returns the first item of room with ID > after that is still owed to
// member, in id order.
func (s *Store) Next(room, member string, after uint64) (Item, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[room]
	if r == nil {
		return Item{}, false
	}
	for _, e := range r.items[r.after(after):] {
		if e.owes(member) {
			return e.it, true
		}
	}
	return Item{}, false
}

// Changed returns a channel that is closed the next time an item is added to
// room (so a delivery loop can wait for work without polling).
func (s *Store) Changed(room string) <-chan struct{} {
	s.mu.RLock()
	if r := s.rooms[room]; r != nil && r.changed != nil {
		ch := r.changed
		s.mu.RUnlock()
		return ch
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.roomLocked(room)
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// Ack records that member holds item id. The item is deleted once no member
// is owed it. It returns the item (Data may be nil) so the caller can count
// per-file progress, or ErrNotOwed.
func (s *Store) Ack(room, member string, id uint64) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return Item{}, notOwed(room, member, id)
	}
	i, ok := r.find(id)
	if !ok {
		return Item{}, notOwed(room, member, id)
	}
	e := r.items[i]
	j := e.index(member)
	if j < 0 {
		return Item{}, notOwed(room, member, id)
	}
	e.owed = append(e.owed[:j], e.owed[j+1:]...)
	out := e.it
	out.Data = nil
	switch {
	case len(e.owed) == 0:
		s.removeAtLocked(r, i)
		s.wakeLocked()
		s.gcRoomLocked(r)
	case s.evictableLocked(r, e):
		// the last online member acked: a waiting Put may evict it now.
		s.wakeLocked()
	}
	return out, nil
}

// SetOnline records whether member of room is connected; only chunks owed
// solely to offline members may be evicted under pressure.
func (s *Store) SetOnline(room, member string, online bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.roomLocked(room)
	was, known := r.online[member]
	if r.online == nil {
		r.online = make(map[string]bool)
	}
	r.online[member] = online
	switch {
	case online && known && !was:
		r.offline--
		s.offline--
	case !online && (!known || was):
		r.offline++
		s.offline++
		// chunks owed only to member may now be evicted by a waiting Put.
		s.wakeLocked()
	}
}

// DropMember removes member from every owed set in room (the member left for
// good), deleting items owed to nobody else, and forgets its online state.
func (s *Store) DropMember(room, member string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return
	}
	if online, known := r.online[member]; known {
		delete(r.online, member)
		if !online {
			r.offline--
			s.offline--
		}
	}
	changed := false
	n := s.filterLocked(r, func(e *entry) bool {
		if j := e.index(member); j >= 0 {
			e.owed = append(e.owed[:j], e.owed[j+1:]...)
			changed = true
		}
		return len(e.owed) > 0
	})
	if n > 0 || changed {
		s.wakeLocked()
	}
	s.gcRoomLocked(r)
}

// Owed returns how many items and bytes of room are still owed to member.
func (s *Store) Owed(room, member string) (items int, bytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[room]
	if r == nil {
		return 0, 0
	}
	for _, e := range r.items {
		if e.owes(member) {
			items++
			bytes += e.it.Size()
		}
	}
	return items, bytes
}

// Expire deletes every item whose TTL has passed at Config.Now() and returns
// how many it deleted.
func (s *Store) Expire() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rooms {
		n += s.filterLocked(r, func(e *entry) bool { return e.it.Expires.After(now) })
		s.gcRoomLocked(r)
	}
	if n > 0 {
		s.wakeLocked()
	}
	return n
}

// RunCleanup calls Expire every interval until ctx is done.
func (s *Store) RunCleanup(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
			s.Expire()
		}
	}
}

// Stats returns totals for the whole store.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Bytes: s.bytes, Items: s.items, Rooms: s.nonEmpty}
}

// RoomStats returns totals for one room (Rooms is 0 or 1).
func (s *Store) RoomStats(room string) Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[room]
	if r == nil || len(r.items) == 0 {
		return Stats{}
	}
	return Stats{Bytes: r.bytes, Items: len(r.items), Rooms: 1}
}

// Close wakes every waiting Put with ErrClosed.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	s.wakeLocked()
}

// Has reports whether the store still holds item id of room.
func (s *Store) Has(room string, id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return false
	}
	_, ok := r.find(id)
	return ok
}

// Online reports whether member of room counts as online for eviction,
// and whether the store has heard of it at all.
func (s *Store) Online(room, member string) (online, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return false, false
	}
	online, known = r.online[member]
	return online, known
}
