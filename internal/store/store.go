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

// Config sets the store's limits. Zero fields get defaults.
type Config struct {
	MaxBytes     int64         // global cap on stored bytes; default 256 MiB
	MaxRoomBytes int64         // per-room cap; default MaxBytes/2
	TTL          time.Duration // how long an item lives unacknowledged; default 10 min
	Now          func() time.Time
	// OnEvict, if set, is called (without the store's lock held) for every
	// chunk evicted for space before its TTL, with the offline members that
	// were still owed it.
	OnEvict func(it Item, members []string)
}

// Item is one stored element. The store treats Data as opaque sealed bytes.
type Item struct {
	ID      uint64 // assigned by Put; strictly increasing across the store
	Room    string
	Sender  string // member id of the uploader
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
	// implementation fields
}

// New validates cfg, fills defaults and returns an empty store.
func New(cfg Config) (*Store, error) { panic("TODO") }

// Put stores it (Room, Sender, Kind, File, Data; ID and Expires are set by
// the store) owed to the given members, and returns its id. An item owed to
// nobody is not stored (id 0, nil error). While the global or the room's cap
// would be exceeded, Put waits for acks or expiry to free space (after
// evicting offline-only chunks, see package doc); it returns an error wrapping
// ErrFull if ctx ends first, ErrTooLarge if the item can never fit.
func (s *Store) Put(ctx context.Context, it Item, owed []string) (uint64, error) { panic("TODO") }

// Next returns the first item of room with ID > after that is still owed to
// member, in id order.
func (s *Store) Next(room, member string, after uint64) (Item, bool) { panic("TODO") }

// Changed returns a channel that is closed the next time an item is added to
// room (so a delivery loop can wait for work without polling).
func (s *Store) Changed(room string) <-chan struct{} { panic("TODO") }

// Ack records that member holds item id. The item is deleted once no member
// is owed it. It returns the item (Data may be nil) so the caller can count
// per-file progress, or ErrNotOwed.
func (s *Store) Ack(room, member string, id uint64) (Item, error) { panic("TODO") }

// SetOnline records whether member of room is connected; only chunks owed
// solely to offline members may be evicted under pressure.
func (s *Store) SetOnline(room, member string, online bool) { panic("TODO") }

// DropMember removes member from every owed set in room (the member left for
// good), deleting items owed to nobody else, and forgets its online state.
func (s *Store) DropMember(room, member string) { panic("TODO") }

// Owed returns how many items and bytes of room are still owed to member.
func (s *Store) Owed(room, member string) (items int, bytes int64) { panic("TODO") }

// Expire deletes every item whose TTL has passed at Config.Now() and returns
// how many it deleted.
func (s *Store) Expire() int { panic("TODO") }

// RunCleanup calls Expire every interval until ctx is done.
func (s *Store) RunCleanup(ctx context.Context, every time.Duration) { panic("TODO") }

// Stats returns totals for the whole store.
func (s *Store) Stats() Stats { panic("TODO") }

// RoomStats returns totals for one room (Rooms is 0 or 1).
func (s *Store) RoomStats(room string) Stats { panic("TODO") }

// Close wakes every waiting Put with ErrClosed.
func (s *Store) Close() { panic("TODO") }
