package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"cloakroom/client/transfer"
	"cloakroom/internal/protocol"
)

// Links (docs/PROTOCOL.md "Links and data-channel messages"): every
// confirmed peer session is a link over which both members tell each other
// what they hold, ask for chunks and serve them, for every file they share.

// links is the set of ready links (a member may have several: each side
// may have offered one, and an origin offers one per file it sends), and
// the members a link is being set up with.
type links struct {
	mu      sync.Mutex
	ready   map[string][]*peerConn // oldest first
	pending map[string]bool
	servers map[*peerConn]*linkServer
	// verdicts: the origin's sends waiting for a receiver's progress and
	// verdict on a file, by member and file id (over any link with it).
	verdicts map[verdictKey]receiverEvents
}

type verdictKey struct {
	member string
	file   [16]byte
}

func newLinks() *links {
	return &links{ready: map[string][]*peerConn{}, pending: map[string]bool{}, servers: map[*peerConn]*linkServer{},
		verdicts: map[verdictKey]receiverEvents{}}
}

// get returns the newest link with member, or nil.
func (ls *links) get(member string) *peerConn {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.ready[member]; len(l) > 0 {
		return l[len(l)-1]
	}
	return nil
}

// with returns every link with member, newest first.
func (ls *links) with(member string) []*peerConn {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := slices.Clone(ls.ready[member])
	slices.Reverse(l)
	return l
}

// all returns the newest link with each member.
func (ls *links) all() []*peerConn {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make([]*peerConn, 0, len(ls.ready))
	for _, l := range ls.ready {
		out = append(out, l[len(l)-1])
	}
	return out
}

// linkReady makes a confirmed session a link: it serves wants from now on,
// and the member hears what this member holds; fetches gain a source. The
// link's server stops when the session ends.
func (c *Client) linkReady(p *peerConn) {
	if !p.linked.CompareAndSwap(false, true) {
		return // once per session (onDC calls it for every message)
	}
	c.links.mu.Lock()
	srv := newLinkServer(c, p)
	c.links.servers[p] = srv
	c.links.ready[p.member] = append(c.links.ready[p.member], p)
	delete(c.links.pending, p.member)
	c.links.mu.Unlock()
	go srv.run()
	go func() {
		<-p.failed
		c.linkGone(p)
	}()
	for _, f := range c.fetches() {
		f.addSource(p)
	}
	// Off the caller's goroutine (it may be pion's reader): the member
	// hears what this member holds.
	go func() {
		for _, e := range c.lib.all() {
			if e.origin == p.member {
				continue // the origin holds it all
			}
			if f := c.fetchOf(e.man.File); f != nil || e.nHeldNow() > 0 {
				c.sendHave(p, e, true)
			}
		}
	}()
}

// linkGone forgets a link that ended; fetches move to another link with
// the same member, if there is one.
func (c *Client) linkGone(p *peerConn) {
	c.links.mu.Lock()
	delete(c.links.servers, p)
	l := slices.DeleteFunc(c.links.ready[p.member], func(q *peerConn) bool { return q == p })
	if len(l) == 0 {
		delete(c.links.ready, p.member)
	} else {
		c.links.ready[p.member] = l
	}
	c.links.mu.Unlock()
	next := c.links.get(p.member)
	for _, f := range c.fetches() {
		f.removeSource(p, next)
	}
}

// sendHave tells a link what this member holds of e.
func (c *Client) sendHave(p *peerConn, e *entry, full bool) {
	m := &protocol.DCMessage{Kind: protocol.DCHave, File: e.fid, Ranges: e.ranges()}
	if full {
		m.Flags |= protocol.HaveFull
	}
	if e.complete() {
		m.Flags, m.Ranges = m.Flags|protocol.HaveComplete, nil
	}
	c.sendDC(p, m)
}

// sendToMember sends a message that must get through (a receiver's verdict)
// on every live link with member: a link that is being torn down takes a
// message without delivering it, and a sender waiting for the verdict would
// wait on. The origin keeps the first verdict and drops repeats.
func (c *Client) sendToMember(member string, m *protocol.DCMessage) {
	b := protocol.AppendDC(nil, m)
	sent := 0
	for _, p := range c.links.with(member) {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		err := p.send(ctx, b)
		cancel()
		if err == nil {
			sent++
			c.log.Debug("link message sent", "member", short8(member), "kind", m.Kind, "session", short8(p.session))
		}
	}
	if sent == 0 {
		c.log.Debug("no link took a message", "member", short8(member))
	}
}

// sendDC sends a control message on a link, without waiting long.
func (c *Client) sendDC(p *peerConn, m *protocol.DCMessage) {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	if err := p.send(ctx, protocol.AppendDC(nil, m)); err != nil {
		c.log.Debug("link message not sent", "member", short8(p.member), "err", err)
	}
}

// onDC handles every message on a confirmed session (a link).
func (c *Client) onDC(p *peerConn, data []byte) {
	c.linkReady(p) // before anything it says is acted on (idempotent)
	if k, err := protocol.FrameKind(data); err == nil && k == protocol.FrameChunkUp {
		c.onChunk(p, data)
		return
	}
	m, err := protocol.ParseDC(data)
	if err != nil {
		p.fail(fmt.Errorf("malformed message from %s: %v: %w", short8(p.member), err, ErrProtocol))
		return
	}
	file := uuid.UUID(m.File).String()
	switch m.Kind {
	case protocol.DCManifest:
		c.onManifest(p, m)
	case protocol.DCProgress, protocol.DCDone:
		c.links.mu.Lock()
		ev, ok := c.links.verdicts[verdictKey{p.member, m.File}]
		c.links.mu.Unlock()
		c.log.Debug("receiver report", "member", short8(p.member), "kind", m.Kind, "waiting", ok)
		if ok {
			ev.deliver(m)
		}
	case protocol.DCHave:
		if e := c.lib.get(file); e != nil {
			e.noteHave(p.member, m)
		}
		if f := c.fetchOf(file); f != nil {
			f.have(p.member, m)
		}
	case protocol.DCWant:
		c.links.mu.Lock()
		srv := c.links.servers[p]
		c.links.mu.Unlock()
		if srv != nil {
			srv.want(file, m)
		}
	case protocol.DCHashReq, protocol.DCHashes:
		c.onHashes(p, file, m)
	case protocol.DCCancel:
		c.links.mu.Lock()
		srv := c.links.servers[p]
		c.links.mu.Unlock()
		if srv != nil {
			srv.cancel(file)
		}
	default:
		p.fail(fmt.Errorf("unexpected message %#x from %s: %w", m.Kind, short8(p.member), ErrProtocol))
	}
}

// onManifest starts the reception of a file its origin announces on a link.
func (c *Client) onManifest(p *peerConn, m *protocol.DCMessage) {
	file := uuid.UUID(m.File).String()
	e, _, err := c.addEntry(p.member, file, m.Chunks, m.Sealed)
	if err != nil {
		c.sendDC(p, &protocol.DCMessage{Kind: protocol.DCDone, File: m.File, Failed: true, Reason: truncate(err.Error(), 512)})
		return
	}
	e.noteHolder(p.member, true)
	c.startFetch(e, c.opts.Sequential, p.member == e.origin)
}

// onChunk hands a chunk to the fetch of its file: from the origin as is,
// from anyone else checked against the origin's chunk hashes first.
func (c *Client) onChunk(p *peerConn, data []byte) {
	ch, err := protocol.ParseChunkUp(data)
	if err != nil {
		p.fail(fmt.Errorf("malformed chunk from %s: %w", short8(p.member), err))
		return
	}
	f := c.fetchOf(uuid.UUID(ch.File).String())
	if f == nil {
		return // not asked for (any more)
	}
	d := &protocol.ChunkDown{Sender: f.e.oid, Chunk: ch}
	if p.member == f.e.origin {
		err = c.recv.Chunk(c.ctx, d, f.source())
	} else {
		err = c.recv.ChunkChecked(c.ctx, d, f.source(), f.e.hashes.Check)
	}
	switch {
	case errors.Is(err, transfer.ErrBadChunk):
		f.bad(p.member, ch.Index, err)
	case err != nil && !errors.Is(err, transfer.ErrSourceGone):
		f.refused(p.member, ch.Index)
	case err == nil:
		f.stripes.deliveredBy(p, len(ch.Sealed))
		f.arrived(p.member, ch.Index)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// onHashes answers a hash request with the piece, if known, or takes a
// piece (checked against the manifest's commitment).
func (c *Client) onHashes(p *peerConn, file string, m *protocol.DCMessage) {
	e := c.lib.get(file)
	if e == nil {
		return
	}
	if m.Kind == protocol.DCHashReq {
		if piece, ok := e.hashes.Piece(m.Piece); ok {
			go c.sendDC(p, &protocol.DCMessage{Kind: protocol.DCHashes, File: m.File, Piece: m.Piece, Hashes: piece})
		}
		return
	}
	if err := e.hashes.SetPiece(m.Piece, m.Hashes); err != nil {
		c.log.Warn("a member sent a wrong hash piece; ignoring it", "member", short8(p.member), "err", err)
	} else if f := c.fetchOf(file); f != nil {
		f.poke()
	}
}
