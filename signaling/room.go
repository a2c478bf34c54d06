package signaling

import (
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// room is one room: its verifier hash, known members and relay transfers.
// Every field is guarded by Server.mu.
type room struct {
	id       string
	verifier [32]byte
	members  map[string]*member
	files    map[string]*fileState
	maker    *addrState // the address that made the room (its room count)
}

// member is a known member of a room; conn is nil while it is offline.
type member struct {
	id, pub, mac string
	conn         *conn
	node         string    // the cluster node it is online on, when not this one (conn is nil)
	stamp        int64     // the latest presence change (unix ns), here or on another node
	offlineSince time.Time // valid while conn is nil and node is ""
	// stalled: online but acking nothing for AckStall; the relay treats it
	// as offline (chunks owed only to it may be evicted for space).
	stalled bool
	// nodeGone: offline because its node vanished (NodeGone); the relay
	// store still counts it online until nodeGoneGrace has passed, so its
	// chunks are not evicted while it reconnects to another node.
	nodeGone bool
}

func newRoom(id string, vh [32]byte) *room {
	return &room{
		id:       id,
		verifier: vh,
		members:  make(map[string]*member),
		files:    make(map[string]*fileState),
	}
}

// current reports whether c is still its member's live connection in a
// room the server knows; s.mu is held.
func (s *Server) currentLocked(c *conn) bool {
	r, m := c.room, c.mem
	return r != nil && m != nil && s.rooms[r.id] == r && r.members[m.id] == m && m.conn == c
}

// broadcastLocked queues b for every online member of r but except.
func (s *Server) broadcastLocked(r *room, except *member, b []byte) {
	for _, m := range r.members {
		if m != except && m.conn != nil {
			m.conn.send(b)
		}
	}
}

// sendToLocked queues m for member id of r if it is online here.
func (s *Server) sendToLocked(r *room, id string, m *protocol.Message) {
	if mem := r.members[id]; mem != nil && mem.conn != nil {
		mem.conn.sendMsg(m)
	}
}

// disconnected forgets c; if it was its member's live connection the member
// goes offline (it stays owed its items until the relay TTL).
func (s *Server) disconnected(c *conn) {
	s.markOffline(c)
	if c.addr != nil {
		s.addrs.close(c.addr, c.admitted)
	}
	if h := s.hookDisconnected; h != nil {
		h()
	}
}

func (s *Server) markOffline(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if !s.currentLocked(c) {
		return
	}
	r, mem := c.room, c.mem
	mem.conn = nil
	mem.offlineSince = s.now()
	mem.stamp = mem.offlineSince.UnixNano()
	s.store.SetOnline(r.id, mem.id, false)
	p := &protocol.Message{Type: protocol.TypePresence, Event: protocol.EventOffline, Member: mem.id}
	s.broadcastLocked(r, mem, s.encode(p))
	s.emit(s.presenceEvent(r, mem, protocol.EventOffline))
	s.log.Debug("signaling: offline", "room", r.id, "member", mem.id)
}

// handleLeave: the member leaves for good.
func (c *conn) handleLeave() {
	s := c.s
	s.mu.Lock()
	if s.currentLocked(c) {
		s.forgetLocked(c.room, c.mem, "the member left the room")
	}
	s.mu.Unlock()
	c.shutdown(&closeReason{graceful: true, code: websocket.CloseNormalClosure, text: "left", cause: "leave"})
}

// forgetLocked removes mem from r for good: nothing more is owed to it, the
// others see it leave, and senders of files it had not finished learn that
// it will not get them.
func (s *Server) forgetLocked(r *room, mem *member, why string) {
	s.emit(s.presenceEvent(r, mem, protocol.EventLeave))
	s.dropLocked(r, mem, why)
}

// dropLocked is forgetLocked without telling the other nodes (they told us).
func (s *Server) dropLocked(r *room, mem *member, why string) {
	delete(r.members, mem.id)
	mem.conn = nil
	if s.cfg.OnForget != nil {
		s.cfg.OnForget(turnUser(r.id, mem.id))
	}
	s.store.DropMember(r.id, mem.id)
	p := &protocol.Message{Type: protocol.TypePresence, Event: protocol.EventLeave, Member: mem.id}
	s.broadcastLocked(r, mem, s.encode(p))
	for id, f := range r.files {
		if f.sender == mem.id {
			delete(r.files, id)
			continue
		}
		s.undeliverableLocked(r, f, mem.id, why)
	}
	s.log.Debug("signaling: member forgotten", "room", r.id, "member", mem.id)
}
