package transfer

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"time"
)

// Swarm is a fetcher's schedule (docs/PROTOCOL.md "Fetcher schedule"):
// which chunk to ask of which source. Sources are the file's origin, which
// holds everything and is asked for chunks of its own choice ("any") only
// while some missing chunk is held by no one else, and other holders, asked
// for chunks by index, rarest first (or lowest first in sequential mode).
// Each source has a window of outstanding chunks; a source that delivers
// nothing for StallAfter gives its outstanding chunks back. Not safe for
// concurrent use: the fetcher owns it.
type Swarm struct {
	chunks     uint32
	sequential bool
	held       Bits
	nHeld      uint32
	asked      map[uint32]string // chunk -> the source asked for it by index
	sources    map[string]*swarmSource
	rnd        *rand.Rand
}

// Want is what to ask one source for.
type Want struct {
	Source  string
	Indices []uint32
	Any     uint16
}

type swarmSource struct {
	origin   bool
	have     Bits // nil for the origin (it holds everything)
	out      int  // chunks asked by index, outstanding
	anyOut   int  // "any" chunks outstanding
	bad      bool
	width    int       // links the source's wants are spread over (window × width); 0 is 1
	lastSeen time.Time // last chunk, or when last asked with nothing outstanding
	// stalled: a member that delivered nothing for StallAfter while asked
	// (gone without its link ending yet, or too slow): not asked again, and
	// what it holds counts for nothing, until it sends a chunk or a have.
	stalled bool
	// explicit: the origin left "any" unanswered (every chunk it could pick
	// went to members it expects to pass them on, which this fetcher may
	// not reach): ask it by index from now on.
	explicit bool
}

// Windows of outstanding chunks per source, and the stall after which a
// source's outstanding chunks are asked elsewhere.
const (
	OriginWindow = 64
	PeerWindow   = 32
	StallAfter   = 10 * time.Second
	// AnyStallAfter: an origin that sends nothing for this long while
	// "any" chunks are outstanding is asked by index instead.
	AnyStallAfter = 5 * time.Second
)

// NewSwarm schedules a file of chunks chunks of which held already are held.
func NewSwarm(chunks uint32, held func(uint32) bool, sequential bool) *Swarm {
	s := &Swarm{chunks: chunks, sequential: sequential, held: NewBits(chunks), asked: map[uint32]string{},
		sources: map[string]*swarmSource{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	for i := range chunks {
		if held != nil && held(i) {
			s.held.Set(i)
			s.nHeld++
		}
	}
	return s
}

// Done reports whether every chunk is held.
func (s *Swarm) Done() bool { return s.nHeld == s.chunks }

// Held reports whether chunk i is held.
func (s *Swarm) Held(i uint32) bool { return s.held.Has(i) }

// SetSequential switches between rarest-first and lowest-first.
func (s *Swarm) SetSequential(on bool) { s.sequential = on }

// AddSource adds a source (again: it keeps what is known of it).
func (s *Swarm) AddSource(id string, origin bool, now time.Time) {
	if src := s.sources[id]; src != nil {
		src.origin = src.origin || origin
		return
	}
	src := &swarmSource{origin: origin, lastSeen: now}
	if !origin {
		src.have = NewBits(s.chunks)
	}
	s.sources[id] = src
}

// SetWidth says over how many links the wants of source id are spread:
// its window grows as many times, so each link keeps a full window in
// flight (docs/PROTOCOL.md "Stripes").
func (s *Swarm) SetWidth(id string, links int) {
	if src := s.sources[id]; src != nil {
		src.width = links
	}
}

// Sources returns the ids of the usable sources.
func (s *Swarm) Sources() []string {
	var out []string
	for id, src := range s.sources {
		if !src.bad {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// SetHave records chunks a source holds (full: instead of what was known).
func (s *Swarm) SetHave(id string, ranges [][2]uint32, full, complete bool) {
	src := s.sources[id]
	if src == nil || src.origin {
		return
	}
	src.stalled = false // it speaks
	if full {
		src.have = NewBits(s.chunks)
	}
	if complete {
		src.have.SetRange(0, s.chunks)
		return
	}
	for _, r := range ranges {
		src.have.SetRange(r[0], min(r[1], s.chunks))
	}
}

// Remove forgets a source (its link ended); its outstanding chunks are
// asked elsewhere.
func (s *Swarm) Remove(id string) {
	s.release(id)
	delete(s.sources, id)
}

// Bad drops a source that served a chunk not matching its hash; it is
// never asked again.
func (s *Swarm) Bad(id string) {
	s.release(id)
	if src := s.sources[id]; src != nil {
		src.bad = true
	}
}

// IsBad reports whether a source was dropped as bad.
func (s *Swarm) IsBad(id string) bool { return s.sources[id] != nil && s.sources[id].bad }

// Release gives a source's outstanding chunks back (its link ended; it is
// reached over another one now).
func (s *Swarm) Release(id string) { s.release(id) }

func (s *Swarm) release(id string) {
	for i, by := range s.asked {
		if by == id {
			delete(s.asked, i)
		}
	}
	if src := s.sources[id]; src != nil {
		src.out, src.anyOut = 0, 0
	}
}

// Arrived records chunk i from a source (written or about to be) and
// reports whether it was new.
func (s *Swarm) Arrived(i uint32, from string, now time.Time) bool {
	if src := s.sources[from]; src != nil {
		src.lastSeen = now
		src.stalled = false
		switch {
		case s.asked[i] == from:
			delete(s.asked, i)
			src.out--
		case src.anyOut > 0:
			src.anyOut--
		}
	}
	if i >= s.chunks || s.held.Has(i) {
		return false
	}
	s.held.Set(i)
	s.nHeld++
	return true
}

// Refused records that chunk i from a source could not be used yet (its
// hash piece is unknown): it is asked again later.
func (s *Swarm) Refused(i uint32, from string) {
	if s.asked[i] == from {
		delete(s.asked, i)
		if src := s.sources[from]; src != nil {
			src.out--
		}
	}
}

// Plan returns what to ask of each source now. peersUsable says whether
// chunks may be asked of non-origin sources (their hash pieces are known).
func (s *Swarm) Plan(now time.Time, peersUsable bool) []Want {
	for id, src := range s.sources {
		switch {
		case src.anyOut > 0 && now.Sub(src.lastSeen) > AnyStallAfter:
			s.release(id)
			src.explicit = true
			src.lastSeen = now
		case (src.out > 0 || src.anyOut > 0) && now.Sub(src.lastSeen) > StallAfter:
			s.release(id)
			src.lastSeen = now
			src.stalled = !src.origin
		}
	}
	avail := s.availability()
	ids := make([]string, 0, len(s.sources))
	for id, src := range s.sources {
		if !src.bad {
			ids = append(ids, id)
		}
	}
	// Non-origin sources first, in random order, so the origin is asked
	// only for what no one else can give.
	s.rnd.Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
	slices.SortStableFunc(ids, func(a, b string) int {
		oa, ob := s.sources[a].origin, s.sources[b].origin
		switch {
		case oa == ob:
			return 0
		case ob:
			return -1
		}
		return 1
	})
	var wants []Want
	for _, id := range ids {
		src := s.sources[id]
		if src.origin {
			if w := s.planOrigin(id, src, avail, now); w != nil {
				wants = append(wants, *w)
			}
			continue
		}
		if !peersUsable || src.stalled || src.out >= PeerWindow/2 {
			continue
		}
		if idx := s.pick(src, avail, PeerWindow-src.out); len(idx) > 0 {
			for _, i := range idx {
				s.asked[i] = id
			}
			if src.out == 0 && src.anyOut == 0 {
				src.lastSeen = now
			}
			src.out += len(idx)
			wants = append(wants, Want{Source: id, Indices: idx})
		}
	}
	return wants
}

// planOrigin asks the origin for "any" chunks while some missing chunk is
// held by no other source and not asked for; in sequential mode it asks
// for the lowest such chunks by index.
func (s *Swarm) planOrigin(id string, src *swarmSource, avail []uint8, now time.Time) *Want {
	room := OriginWindow*max(src.width, 1) - src.out - src.anyOut
	if room < OriginWindow*max(src.width, 1)/4 {
		return nil
	}
	need := 0
	var lowest []uint32
	for i := range s.chunks {
		if s.held.Has(i) || avail[i] > 0 {
			continue
		}
		if _, ok := s.asked[i]; ok {
			continue
		}
		need++
		if (s.sequential || src.explicit) && len(lowest) < room {
			lowest = append(lowest, i)
		}
	}
	if need == 0 || (!s.sequential && !src.explicit && need <= src.anyOut) {
		return nil
	}
	if src.out == 0 && src.anyOut == 0 {
		src.lastSeen = now
	}
	if s.sequential || src.explicit {
		for _, i := range lowest {
			s.asked[i] = id
		}
		src.out += len(lowest)
		return &Want{Source: id, Indices: lowest}
	}
	// Chunks of its choice already outstanding count against the need.
	if need <= src.anyOut {
		return nil
	}
	n := min(room, need-src.anyOut, 65535)
	src.anyOut += n
	return &Want{Source: id, Any: uint16(n)}
}

// availability counts, per missing chunk, the non-origin sources holding it.
func (s *Swarm) availability() []uint8 {
	avail := make([]uint8, s.chunks)
	for _, src := range s.sources {
		if src.bad || src.origin || src.stalled {
			continue
		}
		for k, w := range src.have {
			for w &^= s.held[k]; w != 0; w &= w - 1 {
				i := uint32(k)*64 + uint32(bits.TrailingZeros64(w))
				if avail[i] < 255 {
					avail[i]++
				}
			}
		}
	}
	return avail
}

// pick chooses up to n chunks src holds that are missing and not asked
// for: rarest first with random ties, or lowest first when sequential.
func (s *Swarm) pick(src *swarmSource, avail []uint8, n int) []uint32 {
	var cand []uint32
	for k, w := range src.have {
		for w &^= s.held[k]; w != 0; w &= w - 1 {
			i := uint32(k)*64 + uint32(bits.TrailingZeros64(w))
			if _, ok := s.asked[i]; !ok {
				cand = append(cand, i)
			}
		}
	}
	if !s.sequential {
		s.rnd.Shuffle(len(cand), func(a, b int) { cand[a], cand[b] = cand[b], cand[a] })
		slices.SortStableFunc(cand, func(a, b uint32) int { return int(avail[a]) - int(avail[b]) })
	}
	return cand[:min(n, len(cand))]
}

// Bits is a fixed-size bitmap of chunks.
type Bits []uint64

// NewBits makes a bitmap of n chunks.
func NewBits(n uint32) Bits { return make(Bits, (n+63)/64) }

// Has reports whether bit i is set.
func (b Bits) Has(i uint32) bool { return int(i/64) < len(b) && b[i/64]&(1<<(i%64)) != 0 }

// Set sets bit i.
func (b Bits) Set(i uint32) {
	if int(i/64) < len(b) {
		b[i/64] |= 1 << (i % 64)
	}
}

// SetRange sets bits [lo, hi).
func (b Bits) SetRange(lo, hi uint32) {
	for i := lo; i < hi; i++ {
		b.Set(i)
	}
}

// Ranges lists the set bits below n as [lo, hi) ranges, at most max.
func (b Bits) Ranges(n uint32, max int) [][2]uint32 { return runs(n, b.Has, max) }

// Count returns how many chunks are set.
func (b Bits) Count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}
