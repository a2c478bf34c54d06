package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"cloakroom/internal/protocol"
)

// Library signals (docs/PROTOCOL.md "Signals"): a member greets a member
// whose presence it has just verified with the library entries it holds
// and the recent chat; a member starting a fetch tells everyone online, so
// other fetchers of the same file link to it.

// greet sends member the entries this member holds (newest first) and the
// recent chat (hist). It runs on its own goroutine.
func (c *Client) greet(member string, hist []protocol.HistItem) {
	for _, e := range c.lib.newest(protocol.LibraryAnnounce) {
		if e.nHeldNow() == 0 {
			continue
		}
		if err := c.sendLib(member, e); err != nil {
			c.log.Debug("library entry not announced", "member", short8(member), "err", err)
			return
		}
	}
	c.room.sendHistory(member, hist)
}

// sendLib tells member what this member holds of e.
func (c *Client) sendLib(member string, e *entry) error {
	s := &protocol.Signal{Kind: protocol.SignalLib, Session: e.man.File, File: e.man.File, Origin: e.origin,
		Chunks: e.man.Chunks, Env: protocol.EncodeB64(e.env)}
	if e.complete() {
		s.Done = true
	} else {
		s.Have = e.ranges()
	}
	return c.room.sendSignal(member, s)
}

// announceFetch tells every verified online member that this member is
// fetching e (and holds what it holds).
func (c *Client) announceFetch(e *entry) {
	for _, m := range c.room.Members() {
		if m.Online && m.Verified && m.ID != e.origin {
			go func() {
				if err := c.sendLib(m.ID, e); err != nil {
					c.log.Debug("fetch not announced", "member", short8(m.ID), "err", err)
				}
			}()
		}
	}
}

// onLib records a library entry a member holds; a fetch of it may link to
// that member, and (FetchEarlier) a new entry is fetched.
func (c *Client) onLib(from string, s *protocol.Signal) {
	c.mu.Lock()
	c.libHeard = time.Now()
	c.mu.Unlock()
	env, err := protocol.DecodeB64(s.Env)
	if err != nil {
		return
	}
	e, _, err := c.addEntry(s.Origin, s.File, s.Chunks, env)
	if err != nil {
		c.log.Warn("library entry refused", "from", short8(from), "err", err)
		return
	}
	e.noteHolder(from, s.Done)
	if f := c.fetchOf(s.File); f != nil {
		c.maybeLink(f, from)
		return
	}
	// An earlier file is fetched once a member holding all of it (or its
	// origin) says so; a partial holder's lib only lets fetchers link. A
	// file being sent to this member now arrives from its origin anyway.
	if c.opts.FetchEarlier && (s.Done || from == e.origin) && len(c.opts.Transport.Ladder()) > 0 {
		c.startFetch(e, c.opts.Sequential, false)
	}
}

// maybeLink offers a link to member for fetch f if none exists or is being
// set up: always to a member holding all of it (or its origin), and to
// another fetcher only from the smaller member id (the other offers).
func (c *Client) maybeLink(f *fetch, member string) {
	if member == c.id || !c.verifiedOnline(member) {
		return
	}
	complete := f.e.holderComplete(member) || member == f.e.origin
	if !complete && c.id > member {
		return
	}
	c.links.mu.Lock()
	if c.links.ready[member] != nil || c.links.pending[member] {
		c.links.mu.Unlock()
		return
	}
	c.links.pending[member] = true
	c.links.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.offerLink(c.ctx, member)
		c.links.mu.Lock()
		delete(c.links.pending, member)
		c.links.mu.Unlock()
		if err != nil {
			c.log.Info("no link to a holder", "member", short8(member), "err", err)
		}
	}()
}

// offerLink climbs the peer-to-peer ladder to member until a session is
// ready (it becomes a link by the accept hook).
func (c *Client) offerLink(ctx context.Context, member string) error {
	var last error
	for _, mode := range c.opts.Transport.Ladder() {
		p, err := c.peers.offer(member, mode)
		if err == nil {
			if err = p.waitReady(ctx, c.opts.ICETimeout); err == nil {
				return nil
			}
			_ = c.room.sendSignal(member, &protocol.Signal{Kind: protocol.SignalBye, Session: p.session})
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		last = fmt.Errorf("transport %s has no peer-to-peer path: %w", c.opts.Transport, ErrTransport)
	}
	return last
}

func (c *Client) verifiedOnline(member string) bool {
	return slices.ContainsFunc(c.room.Members(), func(m Member) bool { return m.ID == member && m.Online && m.Verified })
}

func (e *entry) holderComplete(member string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holders[member]
}

func (e *entry) holderIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.holders))
	for m := range e.holders {
		out = append(out, m)
	}
	return out
}

func (e *entry) nHeldNow() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nHeld
}

// Fetch starts fetching library entry id from the members who hold it;
// the file arrives through NextFile like any other.
func (c *Client) Fetch(id string) error {
	e := c.lib.get(id)
	if e == nil {
		return fmt.Errorf("file %s: %w", id, ErrNoHolder)
	}
	if e.complete() {
		return nil // held already: NextFile will not see it again
	}
	if len(c.opts.Transport.Ladder()) == 0 {
		return fmt.Errorf("fetching from members needs a peer-to-peer path, not --transport %s: %w", c.opts.Transport, ErrTransport)
	}
	if c.startFetch(e, c.opts.Sequential, false) == nil && !c.recv.Active(id) {
		return fmt.Errorf("file %s was received (or refused) already in this session: %w", id, ErrProtocol)
	}
	return nil
}

// Settle waits until every member online is verified and no library entry
// arrived for quiet (new members greet a newcomer with what they hold), or
// until max has passed.
func (c *Client) Settle(ctx context.Context, quiet, max time.Duration) {
	c.SettleUntil(ctx, quiet, max, nil)
}

// SettleUntil is Settle that also ends, once every member online is
// verified, as soon as enough (if not nil) says so; enough is asked every
// 100 ms while the library settles.
func (c *Client) SettleUntil(ctx context.Context, quiet, max time.Duration, enough func() bool) {
	deadline := time.Now().Add(max)
	_ = c.room.await(ctx, deadline, func() bool {
		for _, m := range c.room.Members() {
			if m.Online && !m.Verified {
				return false
			}
		}
		return true
	})
	verified := time.Now() // they greet once they have verified us, about now
	for {
		heard := c.lastLib()
		if heard.Before(verified) {
			heard = verified
		}
		wait := time.Until(heard.Add(quiet))
		if left := time.Until(deadline); wait > left {
			wait = left
		}
		if wait <= 0 || (enough != nil && enough()) {
			return
		}
		if enough != nil {
			wait = min(wait, 100*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

func (c *Client) lastLib() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.libHeard
}
