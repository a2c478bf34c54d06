package signaling

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"cloakroom/internal/cluster"
	"cloakroom/internal/protocol"
)

// Bus connects a server to the other nodes of a cluster (package cluster
// at the root implements it over NATS; docs/SCALING.md). Without a Bus
// (Config.Bus nil) the server is a single node and none of this runs.
//
// Publish carries a batch of presence, relay items and acks to every other
// node, in order and durably (a JetStream stream); Send carries a signal to one
// node (best effort, like a signal to a client); Announce carries a
// presence event to every node at once, best effort, beside the stream
// (after a NATS server is lost the stream may take seconds to elect a
// leader, and members must not look offline meanwhile); Early does the same
// for a small relay item (a chat message), which the stream carries too
// (the receiving bus marks that copy Early; cluster_early.go). Register returns the
// verifier hash the room is registered with cluster-wide, registering hash
// if it has none; Snapshot asks another node for the members of a room
// (nil, nil when no node knows it). The bus hands what other nodes publish
// to Server.Apply, one event at a time, and calls NodeGone and Reconnected.
type Bus interface {
	Node() string
	Publish(ctx context.Context, batch []*cluster.Event) error
	Send(node string, ev *cluster.Event) error
	Announce(ev *cluster.Event) error
	Early(ev *cluster.Event) error
	Register(ctx context.Context, room, hash string) (string, error)
	Snapshot(ctx context.Context, room string) (*cluster.Event, error)
}

const (
	outboxBytes       = 8 << 20          // relay bytes queued for the bus before uploaders wait
	publishRetry      = time.Minute      // how long an event is retried (NATS reconnecting, a stream leader elected)
	publishAttempt    = 5 * time.Second  // one attempt (a batch): a request sent before a disconnect gets no answer
	drainWait         = 10 * time.Second // how long Close waits for the last events to be published
	publishBatch      = 512              // events published at once (then their acknowledgements awaited)
	publishBatchBytes = 4 << 20          // relay bytes in one batch
	clusterTimeout    = 2 * time.Second  // a registry or snapshot request
)

// outbox queues events for the bus in order; one goroutine (publishLoop,
// owned by the server, ended by Close) publishes them. Control events
// never wait; relay items wait while outboxBytes are queued.
type outbox struct {
	mu    sync.Mutex
	q     []*cluster.Event
	bytes int
	seq   uint64        // the last event's Seq
	wake  chan struct{} // 1-slot: something was queued
	space chan struct{} // closed and replaced when bytes drop
	done  chan struct{} // closed when publishLoop has returned
	// ctx ends publishing for good (Close, once drainWait has passed).
	ctx    context.Context
	cancel context.CancelFunc
}

func newOutbox() *outbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &outbox{wake: make(chan struct{}, 1), space: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// drain publishes this node's gone and waits (at most drainWait) for the
// outbox to empty; then publishLoop gives up and returns.
func (s *Server) drain() {
	s.emit(&cluster.Event{Type: cluster.TypeGone})
	select {
	case <-s.out.done:
	case <-time.After(drainWait):
		s.log.Warn("signaling: cluster events still unpublished at exit; dropping them")
		s.out.cancel()
		<-s.out.done
	}
	s.out.cancel()
}

// emit queues ev for the other nodes (no-op for a single node).
func (s *Server) emit(ev *cluster.Event) {
	if s.bus == nil {
		return
	}
	ev.Node = s.bus.Node()
	o := s.out
	o.mu.Lock()
	o.seq++
	ev.Seq = o.seq
	o.q = append(o.q, ev)
	o.bytes += len(ev.Data)
	o.mu.Unlock()
	if ev.Type == cluster.TypePresence {
		// The fast path, not queued behind a batch being retried; the
		// stream is the sure one. (Core NATS buffers: this does not block.)
		_ = s.bus.Announce(ev)
	} else if isEarly(ev) {
		_ = s.bus.Early(ev)
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// emitItem queues a relay item, waiting while the outbox is full (the
// uploader's reader waits: back-pressure) until ctx ends.
func (s *Server) emitItem(ctx context.Context, ev *cluster.Event) {
	o := s.out
	for {
		o.mu.Lock()
		full, space := o.bytes >= outboxBytes, o.space
		o.mu.Unlock()
		if !full {
			break
		}
		select {
		case <-space:
		case <-ctx.Done():
			s.log.Warn("signaling: relay item not sent to the cluster", "err", ctx.Err())
			return
		}
	}
	s.emit(ev)
}

// publishLoop publishes queued events in batches until the server
// closes, then what is left (each batch retried for publishRetry).
func (s *Server) publishLoop() {
	o := s.out
	defer close(o.done)
	for {
		batch, size := o.take()
		if len(batch) > 0 {
			if o.ctx.Err() == nil { // else Close gave up: drop the rest
				s.publish(coalesceAcks(batch))
			}
			o.mu.Lock()
			o.bytes -= size
			close(o.space)
			o.space = make(chan struct{})
			o.mu.Unlock()
			continue
		}
		select {
		case <-o.wake:
		case <-s.done:
			o.mu.Lock()
			empty := len(o.q) == 0
			o.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// take removes up to publishBatch events (and publishBatchBytes of data,
// at least one event) from the queue.
func (o *outbox) take() ([]*cluster.Event, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, size := 0, 0
	for n < len(o.q) && n < publishBatch && (n == 0 || size+len(o.q[n].Data) <= publishBatchBytes) {
		size += len(o.q[n].Data)
		n++
	}
	batch := slices.Clone(o.q[:n])
	o.q = o.q[n:]
	if len(o.q) == 0 {
		o.q = nil
	}
	return batch, size
}

// coalesceAcks merges a batch's acks, of every room and member, into one
// event (Rooms and Members say whose each key is; at most MaxList keys an
// event), at the place of the batch's last ack: an ack still follows the
// item it acks in the stream. Under load batches grow, and so does the
// merging: one event instead of one per delivery.
func coalesceAcks(batch []*cluster.Event) []*cluster.Event {
	last := -1
	for i, ev := range batch {
		if ev.Type == cluster.TypeAck {
			last = i
		}
	}
	if last < 0 {
		return batch
	}
	out := batch[:0:0]
	var m *cluster.Event
	for i, ev := range batch {
		if ev.Type != cluster.TypeAck {
			out = append(out, ev)
			continue
		}
		if m != nil && len(m.Keys)+len(ev.Keys) > cluster.MaxList {
			out = append(out, m)
			m = nil
		}
		if m == nil {
			m = &cluster.Event{Type: cluster.TypeAck, Node: ev.Node}
		}
		m.Seq = ev.Seq // the last one's: a retry keeps the same id
		for k := range ev.Keys {
			room, member := ev.Room, ev.Member
			if k < len(ev.Rooms) {
				room = ev.Rooms[k]
			}
			if k < len(ev.Members) {
				member = ev.Members[k]
			}
			m.Rooms, m.Members = append(m.Rooms, room), append(m.Members, member)
			var index uint32
			if k < len(ev.Indexes) {
				index = ev.Indexes[k]
			}
			m.Indexes = append(m.Indexes, index)
		}
		m.Keys = append(m.Keys, ev.Keys...)
		if i == last {
			out = append(out, m)
		}
	}
	return out
}

// publish sends a batch to the stream, retrying it whole (the stream drops
// the events it already has by their message ids).
func (s *Server) publish(batch []*cluster.Event) {
	ctx, cancel := context.WithTimeout(s.out.ctx, publishRetry)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, publishAttempt)
		err := s.bus.Publish(actx, batch)
		acancel()
		if err == nil {
			return
		}
		s.log.Debug("signaling: cluster publish attempt failed", "events", len(batch), "err", err)
		if ctx.Err() != nil {
			s.log.Error("signaling: cluster publish failed", "events", len(batch), "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// presenceEvent is the cluster event for a member's presence in r.
func (s *Server) presenceEvent(r *room, m *member, event string) *cluster.Event {
	ev := &cluster.Event{Type: cluster.TypePresence, Room: r.id, Event: event, Member: m.id, Stamp: m.stamp}
	if event == protocol.EventJoin || event == protocol.EventOnline {
		ev.Pub, ev.MAC, ev.Hash = m.pub, m.mac, hex.EncodeToString(r.verifier[:])
	}
	return ev
}

// itemKey is an item's cluster-wide key: the node that stored it first
// and its id there.
func (s *Server) itemKey(id uint64) string { return s.bus.Node() + "/" + strconv.FormatUint(id, 10) }

// keyTable maps the cluster keys of relay items to their ids in this
// node's store, per room, both ways.
type keyTable struct {
	mu    sync.Mutex
	byKey map[string]map[string]uint64
	byID  map[string]map[uint64]string
}

func (k *keyTable) add(room, key string, id uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.byKey == nil {
		k.byKey, k.byID = make(map[string]map[string]uint64), make(map[string]map[uint64]string)
	}
	if k.byKey[room] == nil {
		k.byKey[room], k.byID[room] = make(map[string]uint64), make(map[uint64]string)
	}
	k.byKey[room][key], k.byID[room][id] = id, key
}

func (k *keyTable) id(room, key string) (uint64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, ok := k.byKey[room][key]
	return id, ok
}

func (k *keyTable) key(room string, id uint64) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.byID[room][id]
	return key, ok
}

// prune forgets the keys of items the store no longer holds.
func (k *keyTable) prune(has func(room string, id uint64) bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for room, ids := range k.byID {
		for id, key := range ids {
			if !has(room, id) {
				delete(ids, id)
				delete(k.byKey[room], key)
			}
		}
		if len(ids) == 0 {
			delete(k.byID, room)
			delete(k.byKey, room)
		}
	}
}

// keyFor is the cluster key of this node's item id in room.
func (s *Server) keyFor(room string, id uint64) string {
	if key, ok := s.keys.key(room, id); ok {
		return key
	}
	return s.itemKey(id)
}

// prepareRoom, for a room this node does not know yet, checks the
// verifier against the cluster's registry and learns the room's members
// from another node, so that the join sees the room as every node does.
func (s *Server) prepareRoom(ctx context.Context, id string, hash [32]byte) error {
	s.mu.Lock()
	known := s.rooms[id] != nil
	s.mu.Unlock()
	if known {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	want := hex.EncodeToString(hash[:])
	got, err := s.bus.Register(ctx, id, want)
	if err != nil {
		return fmt.Errorf("signaling: room registry: %w", err)
	}
	if got != want {
		return errBadVerifier
	}
	snap, err := s.bus.Snapshot(ctx, id)
	if err != nil || snap == nil {
		return nil // no other node knows the room: a fresh one
	}
	// The nodes that hold the room have the last word on its verifier (the
	// registry's entry may have expired and been made again).
	if known, ok := parseHash(snap.Hash); ok && known != hash {
		return errBadVerifier
	}
	s.applySnapshot(snap, hash)
	return nil
}
