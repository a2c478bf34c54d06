package client

import (
	"cmp"
	"sync"
	"sync/atomic"
	"time"

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

// DefaultLinks is Options.Links when zero. Two links take a file at the
// bare pion pair's rate on loopback where one does about three quarters
// of it (BENCHMARKS.md); stripes are added only once the first link is
// fast (StripeRate), so a shaped or slow path keeps one association.
const DefaultLinks = 2

// DefaultStripeRate is Options.StripeRate when zero: 16 MB/s
// (128 Mbit/s). Below it the path, not a core, limits the link, and
// another association only competes with the first for the same queue
// (on a 20 Mbit/s shaped uplink two of them lost ICE consent).
const DefaultStripeRate = 16e6

// The first link's rate decides once it delivered stripeProbeBytes (or
// a quarter of the file) or after stripeProbe, whichever comes first.
const (
	stripeProbe      = 2 * time.Second
	stripeProbeBytes = 16 << 20
)

// stripes are the extra links a fetch asked for, by member (once each).
type stripes struct {
	mu    sync.Mutex
	asked map[string]bool
	extra map[string][]*peerConn // the links widen made, by member
	used  map[*peerConn]bool     // sessions that delivered a chunk
	bytes atomic.Int64           // chunk bytes delivered, all sessions
}

// deliveredBy records that session p delivered a chunk of n bytes.
func (s *stripes) deliveredBy(p *peerConn, n int) {
	s.bytes.Add(int64(n))
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
// once per fetch, when p (a new source) is a link with the origin, the
// file is large, and the first link delivered at least StripeRate while
// it was probed. Failures cost nothing but the attempt: the wants
// stay on the links that are up.
func (f *fetch) widen(p *peerConn) {
	c := f.c
	want := cmp.Or(c.opts.Links, DefaultLinks)
	if want < 2 || p.member != f.e.origin || f.e.man.Size < cmp.Or(c.opts.StripeMin, DefaultStripeMin) {
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
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		b0, t0 := f.stripes.bytes.Load(), time.Now()
		enough := min(stripeProbeBytes, f.e.man.Size/4)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for f.stripes.bytes.Load()-b0 < enough && time.Since(t0) < stripeProbe {
			select {
			case <-tick.C:
			case <-f.ended:
				return
			case <-c.ctx.Done():
				return
			}
		}
		r := float64(f.stripes.bytes.Load()-b0) / time.Since(t0).Seconds()
		if r < cmp.Or(c.opts.StripeRate, DefaultStripeRate) {
			c.log.Debug("one link: the path is not fast enough for stripes", "member", short8(p.member), "rate", int64(r))
			return
		}
		for range want - 1 {
			f.stripe(p)
		}
	}()
}

// stripe offers one more link to p's member on p's rung; once ready, its
// wants share the member's.
func (f *fetch) stripe(p *peerConn) {
	c := f.c
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		q, err := c.peers.offer(p.member, p.mode)
		if err == nil {
			err = q.waitReady(c.ctx, c.opts.ICETimeout)
		}
		if err != nil {
			if q != nil {
				_ = c.room.sendSignal(p.member, &protocol.Signal{Kind: protocol.SignalBye, Session: q.session})
			}
			c.log.Info("no extra link for a large file", "member", short8(p.member), "err", err)
			return
		}
		f.stripes.mu.Lock()
		f.stripes.extra[q.member] = append(f.stripes.extra[q.member], q)
		f.stripes.mu.Unlock()
		f.poke()
	}()
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
