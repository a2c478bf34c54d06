package client

import (
	"sync"

	"cloakroom/client/transfer"
	"cloakroom/internal/protocol"
)

// Striping (docs/PROTOCOL.md "Stripes"): one SCTP association runs on one
// goroutine per side, so one link carries a file at what one core can do.
// A fetch of a large file opens more links with its origin, on the same
// rung, and spreads its wants of that member over all of them; the origin
// serves each link's wants on its own (entry.pickFor gives two links of one
// member different chunks), so the associations run side by side. Nothing
// changes on the wire: a stripe is an ordinary link.

// DefaultStripeMin is Options.StripeMin when zero: below it, setting up
// another association costs more than it saves.
const DefaultStripeMin = 64 << 20

// DefaultLinks is Options.Links when zero: one link, no stripes. On the
// 2-core machines the project measures on, two associations gain little
// (both cores are already busy with one: BENCHMARKS.md), and on a shaped
// uplink two associations fill its queue twice as fast (the swarm test's
// 20 Mbit/s link lost ICE consent under them); a user with cores and a
// fast path to spare asks for more with --links.
const DefaultLinks = 1

// stripes are the extra links a fetch asked for, by member (once each).
type stripes struct {
	mu    sync.Mutex
	asked map[string]bool
	extra map[string][]*peerConn // the links widen made, by member
	used  map[*peerConn]bool     // sessions that delivered a chunk
}

// deliveredBy records that session p delivered a chunk.
func (s *stripes) deliveredBy(p *peerConn) {
	s.mu.Lock()
	if s.used == nil {
		s.used = map[*peerConn]bool{}
	}
	s.used[p] = true
	s.mu.Unlock()
}

// delivered is how many sessions delivered chunks.
func (s *stripes) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.used)
}

// widen offers links to the origin until it has c.opts.Links on p's rung,
// once per fetch, when p (a new source) is a link with the origin and the
// file is large. Failures cost nothing but the attempt: the wants stay on
// the links that are up.
func (f *fetch) widen(p *peerConn) {
	c := f.c
	want := c.opts.Links
	if want == 0 {
		want = DefaultLinks
	}
	least := c.opts.StripeMin
	if least == 0 {
		least = DefaultStripeMin
	}
	if want < 2 || p.member != f.e.origin || f.e.man.Size < least {
		return
	}
	f.stripes.mu.Lock()
	if f.stripes.asked == nil {
		f.stripes.asked = map[string]bool{}
	}
	done := f.stripes.asked[p.member]
	f.stripes.asked[p.member] = true
	if !done {
		if f.stripes.extra == nil {
			f.stripes.extra = map[string][]*peerConn{}
		}
		f.stripes.extra[p.member] = []*peerConn{p} // the first link stays a stripe when a newer one becomes the source
	}
	f.stripes.mu.Unlock()
	if done {
		return
	}
	for range want - 1 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			q, err := c.peers.offer(p.member, p.mode)
			if err == nil {
				err = q.waitReady(c.ctx, c.opts.ICETimeout)
			}
			if err == nil {
				f.stripes.mu.Lock()
				if f.stripes.extra == nil {
					f.stripes.extra = map[string][]*peerConn{}
				}
				f.stripes.extra[q.member] = append(f.stripes.extra[q.member], q)
				f.stripes.mu.Unlock()
				f.poke()
			} else {
				if q != nil {
					_ = c.room.sendSignal(p.member, &protocol.Signal{Kind: protocol.SignalBye, Session: q.session})
				}
				c.log.Info("no extra link for a large file", "member", short8(p.member), "err", err)
			}
		}()
	}
}

// liveLinks returns primary and the live links widen made (or found) with
// its member on the same rung: the links a want of that member is spread over. Other
// links with the member (each side may have offered one) are not used for
// wants: only the source's link is, as without stripes.
func (f *fetch) liveLinks(primary *peerConn) []*peerConn {
	out := []*peerConn{primary}
	f.stripes.mu.Lock()
	defer f.stripes.mu.Unlock()
	for _, q := range f.stripes.extra[primary.member] {
		if q != primary && q.mode == primary.mode && q.Err() == nil {
			out = append(out, q)
		}
	}
	return out
}

// splitWant spreads w over k links: indices dealt in turn, "any" counts
// divided; parts with nothing to ask are left out.
func splitWant(w transfer.Want, k int) []transfer.Want {
	if k <= 1 {
		return []transfer.Want{w}
	}
	parts := make([]transfer.Want, k)
	for j := range parts {
		parts[j].Source = w.Source
		parts[j].Any = w.Any / uint16(k)
		if uint16(j) < w.Any%uint16(k) {
			parts[j].Any++
		}
	}
	for n, i := range w.Indices {
		parts[n%k].Indices = append(parts[n%k].Indices, i)
	}
	out := parts[:0]
	for _, p := range parts {
		if p.Any > 0 || len(p.Indices) > 0 {
			out = append(out, p)
		}
	}
	return out
}
