package client

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"cloakroom/client/transfer"
	"cloakroom/internal/protocol"
)

// fetch is the swarm reception of one library entry (docs/PROTOCOL.md
// "Fetcher schedule"): it asks its sources — every link with a member who
// holds chunks of it, the origin included — for chunks by a
// transfer.Swarm, announces what it wrote to every link, and drops a
// source that serves a chunk not matching the origin's hash. Its loop runs
// until the Receiver has finished (or failed, or handed over) the file.
type fetch struct {
	c *Client
	e *entry

	mu       sync.Mutex
	sw       *transfer.Swarm
	links    map[string]*peerConn // sources by member
	pending  []uint32             // chunks written, not yet announced
	lastHave time.Time
	askedFor map[string]bool // hash pieces asked of a member (member+piece)
	helpers  map[string]bool
	dropped  []string
	kick     chan struct{}
	quit     chan struct{} // closed by stop: the fetch ends, its sources are told
	stopOnce sync.Once
	ended    chan struct{} // closed when the loop returned and its sources were told
	stripes  stripes
}

func (c *Client) fetchOf(file string) *fetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetching[file]
}

func (c *Client) fetches() []*fetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*fetch, 0, len(c.fetching))
	for _, f := range c.fetching {
		out = append(out, f)
	}
	return out
}

// startFetch starts fetching e unless it is held, being fetched, or was
// received (or refused) before. takeOver: its origin offers it on a link
// while the relay store brings it (relay first): the fetch takes the
// reception over, and the chunks the relay still brings are written too.
func (c *Client) startFetch(e *entry, sequential, takeOver bool) *fetch {
	if e.complete() || e.origin == c.id {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.fetching[e.man.File]; f != nil || c.recv.Started(e.man.File) && !(takeOver && c.recv.Relayed(e.man.File)) {
		return f
	}
	f := &fetch{c: c, e: e, sw: transfer.NewSwarm(e.man.Chunks, e.has, sequential), links: map[string]*peerConn{},
		askedFor: map[string]bool{}, helpers: map[string]bool{}, kick: make(chan struct{}, 1), quit: make(chan struct{}), ended: make(chan struct{})}
	c.fetching[e.man.File] = f
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f.run()
	}()
	return f
}

func (f *fetch) run() {
	c, e := f.c, f.e
	defer func() {
		c.mu.Lock()
		delete(c.fetching, e.man.File)
		c.mu.Unlock()
		f.cancelAll()
		close(f.ended)
	}()
	if err := c.recv.Start(c.ctx, e.man, e.origin, f.source()); err != nil {
		c.deliverFile(File{ID: e.man.File, Name: e.man.Name, From: e.origin, Err: err})
		return
	}
	e.setCopy(transfer.PartPath(c.opts.Dir, e.man), false)
	c.log.Info("fetching a file from its holders", "file", e.man.File, "origin", short8(e.origin), "holders", len(e.holderIDs()), "links", len(c.links.all()))
	c.announceFetch(e)
	for _, p := range c.links.all() {
		f.addSource(p)
	}
	for _, m := range e.holderIDs() {
		c.maybeLink(f, m)
	}
	f.awaitLinks(linkWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for c.recv.Active(e.man.File) {
		f.step(time.Now())
		select {
		case <-f.kick:
		case <-tick.C:
		case <-f.quit:
			c.log.Info("fetch cancelled", "file", e.man.File)
			return
		case <-c.ctx.Done():
			return
		}
	}
	f.flushHave(true)
}

// stop ends the fetch: its loop returns and tells every source to drop
// what it still owes (cancel); chunks still on their way are ignored.
func (f *fetch) stop() { f.stopOnce.Do(func() { close(f.quit) }) }

// linkWait bounds how long a fetch waits for links to every holder it
// knows before it asks for chunks, so the first wants spread over all of
// them instead of falling on whichever link came up first.
const linkWait = 5 * time.Second

// awaitLinks waits until every online holder of the entry is a source, at
// most d (a holder whose link fails is not waited for).
func (f *fetch) awaitLinks(d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		missing := false
		for _, m := range f.e.holderIDs() {
			f.mu.Lock()
			_, linked := f.links[m]
			f.mu.Unlock()
			f.c.links.mu.Lock()
			pending := f.c.links.pending[m]
			f.c.links.mu.Unlock()
			if !linked && pending {
				missing = true
			}
		}
		if !missing {
			return
		}
		select {
		case <-f.kick:
		case <-deadline.C:
			return
		case <-f.quit:
			return
		case <-f.c.ctx.Done():
			return
		}
	}
}

// step announces what was written, asks for missing hash pieces, and asks
// sources for chunks.
func (f *fetch) step(now time.Time) {
	f.flushHave(false)
	missing := f.e.hashes.Missing()
	f.mu.Lock()
	var pieceAsks []func()
	for m, p := range f.links {
		if m == f.e.origin || f.sw.IsBad(m) {
			continue
		}
		for _, piece := range missing {
			key := fmt.Sprint(m, "/", piece)
			if !f.askedFor[key] {
				f.askedFor[key] = true
				msg := &protocol.DCMessage{Kind: protocol.DCHashReq, File: f.e.fid, Piece: piece}
				pieceAsks = append(pieceAsks, func() { f.c.sendDC(p, msg) })
			}
		}
	}
	if p := f.links[f.e.origin]; p != nil {
		f.sw.SetWidth(f.e.origin, len(f.liveLinks(p)))
	}
	wants := f.sw.Plan(now, len(missing) == 0)
	f.mu.Unlock()
	sends := make([]func(), 0, len(wants))
	for _, w := range wants {
		f.mu.Lock()
		p := f.links[w.Source]
		f.mu.Unlock()
		if p == nil {
			continue
		}
		ls := f.liveLinks(p) // stripes: the member's links on p's rung
		for j, part := range splitWant(w, len(ls)) {
			q := ls[j]
			msg := &protocol.DCMessage{Kind: protocol.DCWant, File: f.e.fid, Any: part.Any, Indices: part.Indices}
			sends = append(sends, func() { f.c.sendDC(q, msg) })
		}
	}
	for _, s := range append(pieceAsks, sends...) {
		go s()
	}
}

// flushHave tells every link the chunks written since the last have, every
// 16 chunks or 100 ms (all at once when final).
func (f *fetch) flushHave(final bool) {
	f.mu.Lock()
	if len(f.pending) == 0 || (!final && len(f.pending) < 16 && time.Since(f.lastHave) < 100*time.Millisecond) {
		f.mu.Unlock()
		return
	}
	b := transfer.NewBits(f.e.man.Chunks)
	for _, i := range f.pending {
		b.Set(i)
	}
	f.pending, f.lastHave = f.pending[:0], time.Now()
	f.mu.Unlock()
	msg := &protocol.DCMessage{Kind: protocol.DCHave, File: f.e.fid, Ranges: b.Ranges(f.e.man.Chunks, protocol.MaxHaveRanges)}
	if f.e.complete() {
		msg.Flags, msg.Ranges = protocol.HaveComplete, nil
	}
	for _, p := range f.c.links.all() {
		if p.member != f.e.origin || final {
			go f.c.sendDC(p, msg)
		}
	}
}

func (f *fetch) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// addSource makes a link a source (the member may hold nothing yet: its
// have messages say).
func (f *fetch) addSource(p *peerConn) {
	f.c.log.Info("fetch source", "file", f.e.man.File, "member", short8(p.member), "origin", p.member == f.e.origin, "session", short8(p.session))
	f.mu.Lock()
	f.links[p.member] = p
	f.sw.AddSource(p.member, p.member == f.e.origin, time.Now())
	f.mu.Unlock()
	f.widen(p)
	f.poke()
}

// removeSource forgets link p; next (another link with the same member,
// or nil) takes its place, and what p still owed is asked again.
func (f *fetch) removeSource(p, next *peerConn) {
	f.mu.Lock()
	if f.links[p.member] == p {
		if next != nil {
			f.links[p.member] = next
			f.sw.Release(p.member) // what it knew of the member still holds
		} else {
			delete(f.links, p.member)
			f.sw.Remove(p.member)
		}
	}
	f.mu.Unlock()
	if next != nil {
		go f.c.sendHave(next, f.e, true) // the member must know what we hold to serve "any"
	}
	f.poke()
}

func (f *fetch) have(member string, m *protocol.DCMessage) {
	f.mu.Lock()
	f.sw.SetHave(member, m.Ranges, m.Flags&protocol.HaveFull != 0, m.Flags&protocol.HaveComplete != 0)
	f.mu.Unlock()
	f.poke()
}

func (f *fetch) arrived(member string, i uint32) {
	f.mu.Lock()
	f.sw.Arrived(i, member, time.Now())
	if member != f.e.origin {
		f.helpers[member] = true
	}
	f.mu.Unlock()
	f.poke()
}

// written records a chunk on disk: it may be served and is announced.
func (f *fetch) written(i uint32) {
	f.mu.Lock()
	f.pending = append(f.pending, i)
	f.mu.Unlock()
}

func (f *fetch) refused(member string, i uint32) {
	f.mu.Lock()
	f.sw.Refused(i, member)
	f.mu.Unlock()
	f.poke()
}

// bad drops a member that served a chunk not matching the origin's hash.
func (f *fetch) bad(member string, i uint32, err error) {
	f.mu.Lock()
	first := !f.sw.IsBad(member)
	f.sw.Bad(member)
	p := f.links[member]
	if first {
		f.dropped = append(f.dropped, member)
	}
	f.mu.Unlock()
	if first {
		f.c.log.Warn("a member served a chunk that does not match the origin's hash; dropped as a source",
			"member", short8(member), "file", f.e.man.File, "chunk", i, "err", err)
		if p != nil {
			go f.c.sendDC(p, &protocol.DCMessage{Kind: protocol.DCCancel, File: f.e.fid})
		}
	}
	f.poke()
}

// isDropped reports whether member was dropped as a source.
func (f *fetch) isDropped(member string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sw.IsBad(member)
}

// report returns the helpers and the dropped sources, for the File.
func (f *fetch) report() (helpers, dropped []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for m := range f.helpers {
		if !slices.Contains(f.dropped, m) {
			helpers = append(helpers, m)
		}
	}
	slices.Sort(helpers)
	return helpers, slices.Clone(f.dropped)
}

// cancelAll tells every source to drop what it still owes (the fetch
// ended), and returns once the messages are sent (or failed).
func (f *fetch) cancelAll() {
	f.mu.Lock()
	primaries := make([]*peerConn, 0, len(f.links))
	for _, p := range f.links {
		primaries = append(primaries, p)
	}
	f.mu.Unlock()
	var ls []*peerConn
	for _, p := range primaries {
		ls = append(ls, f.liveLinks(p)...)
	}
	var wg sync.WaitGroup
	for _, p := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.c.sendDC(p, &protocol.DCMessage{Kind: protocol.DCCancel, File: f.e.fid})
		}()
	}
	wg.Wait()
}

// source is the fetch as the ChunkSource of its reception: its path is the
// origin link's (or any link's), and reports go to the origin.
func (f *fetch) source() fetchSource { return fetchSource{f} }

type fetchSource struct{ f *fetch }

func (s fetchSource) Path() protocol.Path {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if p := s.f.links[s.f.e.origin]; p != nil {
		return p.path()
	}
	for _, p := range s.f.links {
		return p.path()
	}
	return protocol.PathDirect
}

func (s fetchSource) Gone() <-chan struct{} { return nil }

func (s fetchSource) Report(m *protocol.DCMessage) {
	if m.Kind == protocol.DCDone {
		s.f.c.sendToMember(s.f.e.origin, m) // the verdict must get through
		return
	}
	if p := s.f.c.links.get(s.f.e.origin); p != nil {
		go s.f.c.sendDC(p, m)
	}
}
