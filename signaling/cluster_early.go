package signaling

import (
	"slices"
	"sync"
	"time"

	"cloakroom/internal/cluster"
	"cloakroom/internal/store"
)

// The early path (docs/SCALING.md): a small relay envelope (a chat
// message, a file's manifest) goes to every node at once over core NATS
// (Bus.Early) beside the stream, so members on other nodes see it without
// waiting for the stream's replication. The stream's copy stays the sure
// one. Each node applies an item once, whichever copy comes first: the
// early tracker remembers, per origin node, the item sequence numbers it
// took early and not yet seen on the stream, and the highest sequence
// number the stream has brought (the stream is in order: anything below
// it that came early too has been matched).
const (
	earlyMaxData   = 64 << 10 // larger items (chunks) only take the stream
	earlyMaxHeld   = 4096     // early items awaiting their stream copy, per origin
	earlyMaxOrigin = 64       // origin nodes tracked (a cluster has a few; anyone on NATS can make up more)
	pendingAckTTL  = time.Minute
	pendingAckMax  = 1 << 14
)

// isEarly reports whether ev also travels on the early path.
func isEarly(ev *cluster.Event) bool {
	return ev.Type == cluster.TypeItem && store.Kind(ev.Kind) == store.KindEnvelope && len(ev.Data) <= earlyMaxData
}

type earlyOrigin struct {
	streamMax uint64              // highest item Seq the stream brought
	held      map[uint64]struct{} // taken early, above streamMax
}

// earlyTracker decides which copy of an item a node applies.
type earlyTracker struct {
	mu      sync.Mutex
	origins map[string]*earlyOrigin
}

// admit reports whether ev (an item, from the stream or early) is the
// first copy of it this node sees.
func (t *earlyTracker) admit(ev *cluster.Event) bool {
	if ev.Seq == 0 {
		return !ev.Early // untracked: only the stream's copy counts
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.origins[ev.Node]
	if o == nil {
		if len(t.origins) >= earlyMaxOrigin {
			return !ev.Early
		}
		if t.origins == nil {
			t.origins = make(map[string]*earlyOrigin)
		}
		o = &earlyOrigin{held: make(map[uint64]struct{})}
		t.origins[ev.Node] = o
	}
	if ev.Early {
		if len(o.held) >= earlyMaxHeld {
			o.prune() // early copies whose stream copy never came (a lost event)
		}
		_, seen := o.held[ev.Seq]
		if seen || ev.Seq <= o.streamMax || len(o.held) >= earlyMaxHeld {
			return false
		}
		o.held[ev.Seq] = struct{}{}
		return true
	}
	_, took := o.held[ev.Seq]
	delete(o.held, ev.Seq)
	o.streamMax = max(o.streamMax, ev.Seq)
	return !took
}

// prune forgets the early items at or below the stream's mark: their
// stream copy is past, so none will match them.
func (o *earlyOrigin) prune() {
	for seq := range o.held {
		if seq <= o.streamMax {
			delete(o.held, seq)
		}
	}
}

// forget drops what is tracked of a node that is gone.
func (t *earlyTracker) forget(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.origins, node)
}

// pendingAck is an ack made on another node for an item this node has not
// stored yet: with the early path, a member on node B may ack an item
// before the origin's stream copy reached node C.
type pendingAck struct {
	member string
	index  uint32
	at     time.Time
}

// pendingAcks holds such acks (bounded, for pendingAckTTL) until the item
// arrives.
type pendingAcks struct {
	mu    sync.Mutex
	byKey map[string][]pendingAck // room + " " + key
	order []string                // keys in arrival order, for expiry
	n     int
}

// hold keeps an ack of key until the item arrives (take), unless lookup
// finds it stored by now: the check and the keeping are one step, since
// the item may be applied meanwhile (applyItem stores it, then takes).
func (p *pendingAcks) hold(room, key, member string, index uint32, now time.Time,
	lookup func(room, key string) (uint64, bool)) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := lookup(room, key); ok {
		return id, true
	}
	p.expireLocked(now)
	if p.n >= pendingAckMax {
		return 0, false
	}
	if p.byKey == nil {
		p.byKey = make(map[string][]pendingAck)
	}
	k := room + " " + key
	if _, ok := p.byKey[k]; !ok {
		p.order = append(p.order, k)
	}
	p.byKey[k] = append(p.byKey[k], pendingAck{member: member, index: index, at: now})
	p.n++
	return 0, false
}

// take removes and returns the acks waiting for key in room.
func (p *pendingAcks) take(room, key string) []pendingAck {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := room + " " + key
	acks := p.byKey[k]
	if acks != nil {
		delete(p.byKey, k)
		p.n -= len(acks)
	}
	return acks
}

// expireLocked drops keys whose first ack is older than pendingAckTTL.
func (p *pendingAcks) expireLocked(now time.Time) {
	i := 0
	for ; i < len(p.order); i++ {
		acks, ok := p.byKey[p.order[i]]
		if ok && now.Sub(acks[0].at) < pendingAckTTL {
			break
		}
		if ok {
			delete(p.byKey, p.order[i])
			p.n -= len(acks)
		}
	}
	p.order = p.order[i:]
	if len(p.order) > 4*pendingAckMax { // keys taken long ago still listed
		p.order = slices.DeleteFunc(p.order, func(k string) bool { _, ok := p.byKey[k]; return !ok })
	}
}
