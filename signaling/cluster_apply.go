package signaling

import (
	"encoding/hex"
	"errors"
	"slices"

	"cloakroom/internal/cluster"
	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// Apply applies an event another node published (the bus hands it the
// stream's events one at a time, in order; early items, presence and
// signals come from other goroutines beside them). Events from this node and
// events that do not check out are ignored: another node may be buggy or
// hostile, so every id is checked as a client's would be.
func (s *Server) Apply(ev *cluster.Event) {
	if s.bus == nil || ev.Node == s.bus.Node() || !validRemote(ev) {
		return
	}
	switch ev.Type {
	case cluster.TypePresence:
		s.applyPresence(ev)
	case cluster.TypeItem:
		if s.early.admit(ev) {
			s.applyItem(ev)
		}
	case cluster.TypeAck:
		s.applyAck(ev)
	case cluster.TypeSignal:
		s.applySignal(ev)
	case cluster.TypeGone:
		s.NodeGone(ev.Node)
	}
}

// validRemote checks the ids of an event from another node.
func validRemote(ev *cluster.Event) bool {
	if ev.Type == cluster.TypeGone {
		return true
	}
	if !validRooms(ev) {
		return false
	}
	for _, ids := range [][]string{{ev.Member, ev.To, ev.Sender, ev.File}, ev.Owed, ev.Members} {
		for _, id := range ids {
			if id != "" && !protocol.ValidID(id) {
				return false
			}
		}
	}
	if ev.Pub != "" || ev.MAC != "" {
		p, err1 := protocol.DecodeB64(ev.Pub)
		m, err2 := protocol.DecodeB64(ev.MAC)
		if err1 != nil || err2 != nil || len(p) != protocol.PubLen || len(m) != protocol.MACLen {
			return false
		}
	}
	return ev.Type == cluster.TypeSnapshot || ev.Member != "" || ev.Sender != "" || len(ev.Members) > 0
}

// validRooms checks an event's room id, or for an ack of several rooms
// each of its rooms.
func validRooms(ev *cluster.Event) bool {
	valid := func(room string) bool {
		r, err := protocol.DecodeB64(room)
		return err == nil && len(r) == protocol.RoomIDLen
	}
	if ev.Type != cluster.TypeAck || len(ev.Rooms) == 0 {
		return valid(ev.Room)
	}
	return (ev.Room == "" || valid(ev.Room)) && !slices.ContainsFunc(ev.Rooms, func(r string) bool { return !valid(r) })
}

// parseHash reads a verifier hash in hex.
func parseHash(h string) ([32]byte, bool) {
	var out [32]byte
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(out) {
		return out, false
	}
	copy(out[:], b)
	return out, true
}

// applyPresence mirrors a member's presence on another node.
func (s *Server) applyPresence(ev *cluster.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[ev.Room]
	switch ev.Event {
	case protocol.EventJoin, protocol.EventOnline:
		hash, ok := parseHash(ev.Hash)
		if !ok || ev.Pub == "" {
			return
		}
		s.remoteOnlineLocked(r, ev, hash)
	case protocol.EventOffline:
		if m := memberOf(r, ev.Member); m != nil && m.node == ev.Node && !stale(m, ev) {
			m.stamp = ev.Stamp
			s.remoteOfflineLocked(r, m, false)
		}
	case protocol.EventLeave:
		if m := memberOf(r, ev.Member); m != nil && m.conn == nil && !stale(m, ev) {
			s.dropLocked(r, m, "the member left the room")
		}
	}
}

// stale reports whether ev is older than what this node knows of m: the
// stream may deliver a node's presence event after the member came back
// elsewhere (its announcement took the fast path), or after it went
// offline there.
func stale(m *member, ev *cluster.Event) bool { return ev.Stamp != 0 && ev.Stamp <= m.stamp }

func memberOf(r *room, id string) *member {
	if r == nil {
		return nil
	}
	return r.members[id]
}

// remoteOnlineLocked records member ev.Member of room ev.Room as online on
// node ev.Node, making the room if this node did not know it.
func (s *Server) remoteOnlineLocked(r *room, ev *cluster.Event, hash [32]byte) {
	switch {
	case r == nil:
		r = newRoom(ev.Room, hash)
		s.rooms[r.id] = r
	case len(r.members) == 0:
		r.verifier = hash
	case r.verifier != hash:
		s.log.Warn("signaling: a node announced a member with another verifier", "node", ev.Node, "room", r.id)
		return
	}
	m := r.members[ev.Member]
	event := protocol.EventOnline
	switch {
	case m == nil && len(r.members) >= s.cfg.MaxMembers:
		return
	case m == nil:
		m = &member{id: ev.Member, pub: ev.Pub, mac: ev.MAC}
		r.members[m.id] = m
		event = protocol.EventJoin
	case m.pub != ev.Pub, stale(m, ev):
		return
	case m.conn != nil:
		// The member reconnected to another node: this connection is stale.
		m.conn.shutdown(&closeReason{graceful: true, code: closeReplaced, text: "replaced", cause: errReplaced.Error()})
		m.conn = nil
	}
	wasOnline := m.node != ""
	s.log.Debug("signaling: remote online", "member", m.id, "node", ev.Node, "stamp", ev.Stamp, "was", m.node)
	m.node, m.stamp, m.nodeGone = ev.Node, max(m.stamp, ev.Stamp), false
	s.store.SetOnline(r.id, m.id, true)
	if wasOnline && event == protocol.EventOnline {
		return // already shown online (a node re-announcing its members)
	}
	p := &protocol.Message{Type: protocol.TypePresence, Event: event, Member: m.id}
	if event == protocol.EventJoin {
		p.Pub, p.MAC, p.Online = m.pub, m.mac, true
	}
	s.broadcastLocked(r, m, s.encode(p))
}

// remoteOfflineLocked records that m, online on another node, went
// offline. nodeGone: its node vanished, and the relay store keeps counting
// it online until nodeGoneGrace (see NodeGone).
func (s *Server) remoteOfflineLocked(r *room, m *member, nodeGone bool) {
	s.log.Debug("signaling: remote offline", "member", m.id, "node", m.node)
	m.node = ""
	m.offlineSince = s.now()
	m.nodeGone = nodeGone
	if !nodeGone {
		s.store.SetOnline(r.id, m.id, false)
	}
	p := &protocol.Message{Type: protocol.TypePresence, Event: protocol.EventOffline, Member: m.id}
	s.broadcastLocked(r, m, s.encode(p))
}

// applyItem stores a copy of a relay item another node stored, owed to the
// same members, so any node can deliver it (and it survives that node).
func (s *Server) applyItem(ev *cluster.Event) {
	if ev.Key == "" || len(ev.Data) == 0 || len(ev.Owed) == 0 {
		return
	}
	kind := store.Kind(ev.Kind)
	if kind != store.KindEnvelope && kind != store.KindChunk {
		return
	}
	if _, dup := s.keys.id(ev.Room, ev.Key); dup {
		return
	}
	it := store.Item{Room: ev.Room, Sender: ev.Sender, Origin: ev.Origin, Kind: kind, File: ev.File, Data: ev.Data}
	if kind == store.KindChunk {
		if _, err := protocol.ParseChunkUp(ev.Data); err != nil {
			return
		}
	}
	// Never a wait here: the acks that free the space come behind it.
	id, err := s.store.PutCopy(it, ev.Owed)
	if errors.Is(err, store.ErrClosed) {
		return // this node is closing
	}
	if err != nil {
		s.log.Warn("signaling: a relay item from another node does not fit", "node", ev.Node, "err", err)
		return
	}
	s.keys.add(ev.Room, ev.Key, id)
	if acks := s.pending.take(ev.Room, ev.Key); len(acks) > 0 {
		ack := &cluster.Event{Type: cluster.TypeAck, Node: ev.Node, Room: ev.Room}
		for _, a := range acks {
			ack.Keys, ack.Members, ack.Indexes = append(ack.Keys, ev.Key), append(ack.Members, a.member), append(ack.Indexes, a.index)
		}
		s.applyAck(ack)
	}
}

// applyAck records acks made on another node (one event may hold acks of
// several rooms and members), and counts chunk progress for the senders
// connected here.
func (s *Server) applyAck(ev *cluster.Event) {
	type who struct{ room, member string }
	acks := map[who][]chunkAck{}
	for i, key := range ev.Keys {
		w := who{ev.Room, ev.Member}
		if i < len(ev.Rooms) {
			w.room = ev.Rooms[i]
		}
		if i < len(ev.Members) {
			w.member = ev.Members[i]
		}
		var index uint32
		if i < len(ev.Indexes) {
			index = ev.Indexes[i]
		}
		if a, ok := s.applyOneAck(w.room, w.member, key, index); ok {
			acks[w] = append(acks[w], a)
		}
	}
	if len(acks) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for w, a := range acks {
		if r := s.rooms[w.room]; r != nil {
			s.countAcksLocked(r, w.member, a)
		}
	}
}

// applyOneAck frees member's copy of item key in room; for a chunk of a
// file it returns the ack to count (index: the chunk's index+1, 0 unknown).
func (s *Server) applyOneAck(room, member, key string, index uint32) (chunkAck, bool) {
	id, ok := s.keys.id(room, key)
	if !ok {
		// Made on a node that had the item early: it may still come.
		if id, ok = s.pending.hold(room, key, member, index, s.now(), s.keys.id); !ok {
			return chunkAck{}, false
		}
	}
	it, err := s.store.Ack(room, member, id)
	if err != nil {
		s.log.Debug("signaling: remote ack of an item not owed", "key", key, "member", member)
		return chunkAck{}, false
	}
	if it.Kind != store.KindChunk || it.File == "" {
		return chunkAck{}, false
	}
	a := chunkAck{file: it.File}
	if index > 0 {
		a.index, a.known = index-1, true
	}
	return a, true
}

// applySignal delivers a signal from a member on another node.
func (s *Server) applySignal(ev *cluster.Event) {
	if ev.To == "" || len(ev.Data) == 0 {
		return
	}
	b := s.encode(&protocol.Message{Type: protocol.TypeSignal, From: ev.Member, Data: string(ev.Data)})
	hash, ok := parseHash(ev.Hash)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[ev.Room]
	if from := memberOf(r, ev.Member); ok && ev.Pub != "" && (from == nil || from.conn == nil && from.node != ev.Node) {
		// The signal overtook the sender's presence event.
		s.remoteOnlineLocked(r, ev, hash)
		r = s.rooms[ev.Room]
	}
	from, to := memberOf(r, ev.Member), memberOf(r, ev.To)
	if b != nil && from != nil && to != nil && to.conn != nil {
		to.conn.send(b)
	}
}

// NodeGone marks every member online on node as offline (the node drained,
// or the bus has not heard from it in a while). Its members reconnect to
// another node.
func (s *Server) NodeGone(node string) {
	s.early.forget(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rooms {
		for _, m := range r.members {
			if m.node == node {
				// Its members are reconnecting elsewhere, and this node
				// hears of it only once the stream delivers their presence
				// (seconds after a NATS server died): until nodeGoneGrace
				// the relay store keeps them online, so an upload waits
				// for space instead of evicting their chunks (the sender
				// was told "relay full while the member was offline" for
				// a member online on a third node).
				s.remoteOfflineLocked(r, m, true)
			}
		}
	}
}

// Reconnected announces every member online here again (the bus lost its
// NATS connection for a while: other nodes may have thought this one gone).
func (s *Server) Reconnected() {
	s.mu.Lock()
	var evs []*cluster.Event
	now := s.now().UnixNano()
	for _, r := range s.rooms {
		for _, m := range r.members {
			if m.conn != nil {
				m.stamp = max(m.stamp+1, now) // newer than what the others have
				evs = append(evs, s.presenceEvent(r, m, protocol.EventOnline))
			}
		}
	}
	s.mu.Unlock()
	for _, ev := range evs {
		s.emit(ev)
	}
}

// SnapshotOf returns room's members as this node knows them (nil when it
// does not know the room), for a node that is about to admit a member to it.
func (s *Server) SnapshotOf(room string) *cluster.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil || len(r.members) == 0 || s.bus == nil {
		return nil
	}
	ev := &cluster.Event{Type: cluster.TypeSnapshot, Node: s.bus.Node(), Room: room, Hash: hex.EncodeToString(r.verifier[:])}
	for _, m := range r.members {
		node := m.node
		if m.conn != nil {
			node = s.bus.Node()
		}
		ev.Roster = append(ev.Roster, cluster.Member{ID: m.id, Pub: m.pub, MAC: m.mac, Node: node})
	}
	return ev
}

// applySnapshot adds the members another node knows to a room this node
// is about to admit a member to.
func (s *Server) applySnapshot(ev *cluster.Event, hash [32]byte) {
	if !validRemote(ev) || ev.Room == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[ev.Room] != nil {
		return
	}
	r := newRoom(ev.Room, hash)
	for _, sm := range ev.Roster {
		if len(r.members) >= s.cfg.MaxMembers || !protocol.ValidID(sm.ID) || !validAnnouncement(sm.Pub, sm.MAC) {
			continue
		}
		m := &member{id: sm.ID, pub: sm.Pub, mac: sm.MAC, node: sm.Node, offlineSince: s.now()}
		r.members[m.id] = m
		s.store.SetOnline(r.id, m.id, m.node != "")
	}
	s.rooms[r.id] = r
}

func validAnnouncement(pub, mac string) bool {
	p, err1 := protocol.DecodeB64(pub)
	m, err2 := protocol.DecodeB64(mac)
	return err1 == nil && err2 == nil && len(p) == protocol.PubLen && len(m) == protocol.MACLen
}
