package client

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"cloakroom/client/transfer"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// The room library (docs/PROTOCOL.md "Room library and swarm"): every file
// shared in the room that this member knows of, with what it holds of it,
// so it can list it, fetch it from any holder, and serve it to others.

// LibraryEntry is a file shared in the room, as Library lists it.
type LibraryEntry struct {
	ID     string
	Name   string
	Size   int64
	Type   string
	Origin string    // the member who shared it
	Shared time.Time // the origin's clock when it sealed the manifest
	// Duration is the media length in seconds the manifest gives (0: none).
	Duration float64
	// Holders are the online members known to hold all or part of it.
	Holders []string
	// Held: this member holds the whole file (Path says where).
	Held bool
	Path string
}

// entry is one library entry. Its manifest, envelope, origin, hash list
// and cipher are fixed; the rest is guarded by mu.
type entry struct {
	man    *crypto.Manifest
	fid    uuid.UUID // man.File, parsed once
	oid    uuid.UUID // origin, parsed once (chunks are routed by it)
	env    []byte    // the origin's sealed manifest, forwarded as is
	origin string
	hashes *transfer.HashList
	cipher *crypto.ChunkCipher // seals chunks exactly as the origin did
	added  time.Time

	mu       sync.Mutex
	held     transfer.Bits
	nHeld    uint32
	path     string   // our copy: the source file, a partial file, or the received file
	file     *os.File // opened on path for serving
	holders  map[string]bool
	sent     transfer.Bits            // chunks sent to anyone (origin: super-seeding)
	cursor   uint32                   // no unsent chunk below it
	peerHave map[string]transfer.Bits // what each linked member said it holds
	sentTo   map[string]transfer.Bits // chunks sent to each member
	// viaRelay: chunks a member gets through the relay store (uploaded
	// before a peer-to-peer session took over): never its "any" picks.
	viaRelay map[string]transfer.Bits
	served   atomic.Int64 // chunk bytes (plaintext) sent on links
	// wake is closed (and cleared) when a chunk becomes held or the
	// reception fails: Streams waiting for a chunk make it.
	wake    chan struct{}
	failErr error // the reception failed (Streams stop with it)
}

type library struct {
	mu      sync.Mutex
	entries map[string]*entry
}

func newLibrary() *library { return &library{entries: map[string]*entry{}} }

func (l *library) get(file string) *entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[file]
}

// all returns every entry, newest first.
func (l *library) all() []*entry { return l.newest(math.MaxInt) }

// newest returns up to n entries, newest first.
func (l *library) newest(n int) []*entry {
	l.mu.Lock()
	out := make([]*entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b *entry) int { return b.added.Compare(a.added) })
	return out[:min(n, len(out))]
}

// addEntry records a library entry from the origin's sealed manifest (a
// relay announcement, a data-channel manifest or a lib signal) and reports
// whether it is new. The manifest must commit to its chunk hashes.
func (c *Client) addEntry(origin string, file string, chunks uint32, env []byte) (*entry, bool, error) {
	if e := c.lib.get(file); e != nil {
		if e.origin != origin {
			return nil, false, fmt.Errorf("file id %s announced by two origins: %w", file, ErrProtocol)
		}
		return e, false, nil
	}
	man, err := c.keys.OpenManifest(crypto.EnvelopeMeta{Sender: origin, File: file, Chunks: chunks}, env)
	if err != nil {
		return nil, false, fmt.Errorf("library entry from %s: %v: %w", short8(origin), err, transfer.ErrIntegrity)
	}
	e, err := c.newEntry(man, env, origin)
	if err != nil {
		return nil, false, err
	}
	c.lib.mu.Lock()
	defer c.lib.mu.Unlock()
	if old := c.lib.entries[file]; old != nil {
		return old, false, nil
	}
	c.lib.entries[file] = e
	return e, true, nil
}

func (c *Client) newEntry(man *crypto.Manifest, env []byte, origin string) (*entry, error) {
	hashes, err := transfer.NewHashList(man)
	if err != nil {
		return nil, err
	}
	if hashes == nil {
		return nil, fmt.Errorf("manifest of %q has no chunk hashes (a sender older than protocol v4): %w", man.Name, transfer.ErrIntegrity)
	}
	key, err := protocol.DecodeB64(man.Key)
	if err != nil {
		return nil, fmt.Errorf("manifest key: %w", err)
	}
	fid, err1 := uuid.Parse(man.File)
	oid, err2 := uuid.Parse(origin)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("library entry %q from %q: not UUIDs: %w", man.File, origin, ErrProtocol)
	}
	ciph, err := crypto.NewChunkCipher(key, c.keys.RoomID, origin, fid, man.Chunks, man.Size)
	if err != nil {
		return nil, fmt.Errorf("chunk cipher: %w", err)
	}
	return &entry{man: man, fid: fid, oid: oid, env: env, origin: origin, hashes: hashes, cipher: ciph, added: time.Now(),
		held: transfer.NewBits(man.Chunks), sent: transfer.NewBits(man.Chunks), holders: map[string]bool{},
		peerHave: map[string]transfer.Bits{}, sentTo: map[string]transfer.Bits{}, viaRelay: map[string]transfer.Bits{}}, nil
}

// addOwn records a file this member shares: it holds all of it at path.
func (c *Client) addOwn(man *crypto.Manifest, env []byte, path string, chunkHashes []byte) (*entry, error) {
	e, err := c.newEntry(man, env, c.id)
	if err != nil {
		return nil, err
	}
	if err := e.hashes.Fill(chunkHashes); err != nil {
		return nil, err
	}
	e.held.SetRange(0, man.Chunks)
	e.nHeld, e.path = man.Chunks, path
	c.lib.mu.Lock()
	c.lib.entries[man.File] = e
	c.lib.mu.Unlock()
	return e, nil
}

func (e *entry) complete() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nHeld == e.man.Chunks
}

func (e *entry) has(i uint32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held.Has(i)
}

// markHeld records chunk i as written to our copy.
func (e *entry) markHeld(i uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if i < e.man.Chunks && !e.held.Has(i) {
		e.held.Set(i)
		e.nHeld++
		e.wakeLocked()
	}
}

// wakeLocked wakes the Streams waiting for a chunk of e; e.mu is held.
func (e *entry) wakeLocked() {
	if e.wake != nil {
		close(e.wake)
		e.wake = nil
	}
}

// failed records that the reception of e failed, for its Streams.
func (e *entry) failed(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failErr = err
	e.wakeLocked()
}

// setCopy says where our copy is; with all set, every chunk is held.
func (e *entry) setCopy(path string, all bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.path != path && e.file != nil {
		e.file.Close()
		e.file = nil
	}
	e.path = path
	if all {
		e.held.SetRange(0, e.man.Chunks)
		e.nHeld = e.man.Chunks
		e.failErr = nil
		e.wakeLocked()
	}
}

// reader returns our copy, opened once.
func (e *entry) reader() (*os.File, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.file != nil {
		return e.file, nil
	}
	if e.path == "" {
		return nil, fmt.Errorf("%q: no copy here", e.man.Name)
	}
	f, err := os.Open(e.path)
	if err != nil {
		return nil, fmt.Errorf("open our copy of %q: %w", e.man.Name, err)
	}
	e.file = f
	return f, nil
}

func (e *entry) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.file != nil {
		e.file.Close()
		e.file = nil
	}
}

// ranges lists the chunks held, at most MaxHaveRanges ranges.
func (e *entry) ranges() [][2]uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held.Ranges(e.man.Chunks, protocol.MaxHaveRanges)
}

// noteHolder records that member holds (part of) the entry.
func (e *entry) noteHolder(member string, complete bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.holders[member] = e.holders[member] || complete
}

// noteHave records what a linked member said it holds (for choosing what
// to serve it).
func (e *entry) noteHave(member string, m *protocol.DCMessage) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.peerHave[member]
	if b == nil || m.Flags&protocol.HaveFull != 0 {
		b = transfer.NewBits(e.man.Chunks)
		e.peerHave[member] = b
	}
	if m.Flags&protocol.HaveComplete != 0 {
		b.SetRange(0, e.man.Chunks)
	}
	for _, r := range m.Ranges {
		b.SetRange(r[0], min(r[1], e.man.Chunks))
	}
	e.holders[member] = e.holders[member] || m.Flags&protocol.HaveComplete != 0
}

// pickFor chooses a chunk for member's "any" want: the lowest never sent
// to anyone, else the lowest it lacks that was sent neither to it nor to a
// member still linked (that member passes it on: the origin uploads each
// chunk once while its fetchers stay); false if none. linked reports
// whether a member has a link with this member now.
func (e *entry) pickFor(member string, linked func(string) bool) (uint32, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	to := e.sentTo[member]
	if to == nil {
		to = transfer.NewBits(e.man.Chunks)
		e.sentTo[member] = to
	}
	for ; e.cursor < e.man.Chunks && e.sent.Has(e.cursor); e.cursor++ {
	}
	relayed := e.viaRelay[member]
	for i := e.cursor; i < e.man.Chunks; i++ {
		if !e.sent.Has(i) && e.held.Has(i) && !relayed.Has(i) {
			e.sent.Set(i)
			to.Set(i)
			return i, true
		}
	}
	has := e.peerHave[member]
	var carriers []transfer.Bits // chunks sent to members still linked
	for m, b := range e.sentTo {
		if m != member && linked(m) {
			carriers = append(carriers, b)
		}
	}
	for i := range e.man.Chunks {
		if !e.held.Has(i) || to.Has(i) || (has != nil && has.Has(i)) || relayed.Has(i) {
			continue
		}
		if slices.ContainsFunc(carriers, func(b transfer.Bits) bool { return b.Has(i) }) {
			continue
		}
		to.Set(i)
		return i, true
	}
	return 0, false
}

// relaying records the chunks member gets through the relay store: "any"
// wants from it never pick them (asked by index, they are served: the
// relay lost them, or is slow).
func (e *entry) relaying(member string, chunks transfer.Bits) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.viaRelay[member] = chunks
}

// sentChunk records an explicitly asked chunk as sent to member.
func (e *entry) sentChunk(member string, i uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent.Set(i)
	if e.sentTo[member] == nil {
		e.sentTo[member] = transfer.NewBits(e.man.Chunks)
	}
	e.sentTo[member].Set(i)
}

// Library lists the files shared in the room that this member knows of,
// newest first.
func (c *Client) Library() []LibraryEntry {
	online := c.room.OnlineMembers()
	var out []LibraryEntry
	for _, e := range c.lib.all() {
		e.mu.Lock()
		le := LibraryEntry{ID: e.man.File, Name: e.man.Name, Size: e.man.Size, Type: e.man.Type, Origin: e.origin,
			Shared: time.UnixMilli(e.man.TS), Duration: e.man.Duration, Held: e.nHeld == e.man.Chunks, Path: e.path}
		for m := range e.holders {
			if slices.Contains(online, m) {
				le.Holders = append(le.Holders, m)
			}
		}
		e.mu.Unlock()
		slices.Sort(le.Holders)
		out = append(out, le)
	}
	return out
}

// completeHashes computes the chunk hashes of a received file whose hash
// pieces never came (it came through the relay), so it can serve them.
func (c *Client) completeHashes(e *entry) {
	f, err := e.reader()
	if err != nil {
		return
	}
	ch, err := transfer.ChunkHashes(io.NewSectionReader(f, 0, e.man.Size), e.man.Size, e.man.ChunkSize)
	if err == nil {
		err = e.hashes.Fill(ch)
	}
	if err != nil {
		c.log.Warn("chunk hashes of a received file do not match its manifest", "file", e.man.File, "err", err)
	}
}
