package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloakroom/internal/auth"
	"cloakroom/internal/protocol"
)

// handleJoin handles the first frame of a connection, which must be a join.
func (c *conn) handleJoin(binary bool, data []byte) {
	if binary {
		c.shutdown(refuse(protocol.CodeNotJoined, "the first message must be join"))
		return
	}
	m, err := protocol.Decode(data)
	switch {
	case err != nil && wrongVersion(data):
		c.shutdown(refuse(protocol.CodeVersion, "unsupported protocol version"))
		return
	case err != nil:
		c.shutdown(refuse(protocol.CodeBadRequest, "malformed join: "+truncate(err.Error())))
		return
	case m.Type != protocol.TypeJoin:
		c.shutdown(refuse(protocol.CodeNotJoined, "the first message must be join"))
		return
	}
	v, err := protocol.DecodeB64(m.Verifier)
	if err != nil || len(v) != protocol.VerifierLen { // Decode checked it; re-check anyway
		c.shutdown(refuse(protocol.CodeBadRequest, "malformed verifier"))
		return
	}
	if r := c.s.join(c, m, v); r != nil {
		c.shutdown(r)
		return
	}
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	})
	close(c.joined) // the writer delivers the member's relay items from now on
}

// wrongVersion reports whether data is a join with a version other than ours.
func wrongVersion(data []byte) bool {
	var h struct {
		T string `json:"t"`
		V int    `json:"v"`
	}
	return json.Unmarshal(data, &h) == nil && h.T == protocol.TypeJoin && h.V != protocol.Version
}

// join admits c as member m.Member of room m.Room, or says why not.
func (s *Server) join(c *conn, m *protocol.Message, verifier []byte) *closeReason {
	if s.bus != nil {
		err := s.prepareRoom(c.ctx, m.Room, auth.HashVerifier(verifier))
		switch {
		case errors.Is(err, errBadVerifier):
			return refuse(protocol.CodeBadVerifier, "wrong room verifier: you do not hold this room's secret")
		case err != nil:
			s.log.Warn("signaling: cluster unavailable for a join", "err", err)
			return refuse(protocol.CodeGoingAway, "the cluster is unavailable; reconnect later")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return goingAway()
	}
	r, refusal := s.roomFor(m.Room, verifier, c.addr)
	if refusal != nil {
		return refusal
	}
	mem := r.members[m.Member]
	event := protocol.EventOnline
	switch {
	case mem == nil && len(r.members) >= s.cfg.MaxMembers:
		s.limited.add(LimitMembers)
		return refuse(protocol.CodeRoomFull, "this room is full")
	case mem == nil:
		mem = &member{id: m.Member, pub: m.Pub, mac: m.MAC}
		r.members[mem.id] = mem
		event = protocol.EventJoin
	case mem.pub != m.Pub:
		return refuse(protocol.CodeMemberTaken, "member id in use with another key")
	case mem.conn != nil:
		mem.conn.shutdown(&closeReason{graceful: true, code: closeReplaced,
			text: "replaced", cause: errReplaced.Error()})
	}
	mem.conn, mem.node, mem.stamp, mem.nodeGone = c, "", s.now().UnixNano(), false
	c.room, c.mem = r, mem
	s.store.SetOnline(r.id, mem.id, true)
	c.sendMsg(s.welcome(r, mem))
	p := &protocol.Message{Type: protocol.TypePresence, Event: event, Member: mem.id}
	if event == protocol.EventJoin {
		p.Pub, p.MAC, p.Online = mem.pub, mem.mac, true
	}
	s.broadcastLocked(r, mem, s.encode(p))
	s.emit(s.presenceEvent(r, mem, event))
	s.log.Debug("signaling: joined", "room", r.id, "member", mem.id, "event", event)
	return nil
}

// roomFor returns the room id, registering it with (the hash of) verifier
// when it is new or has no known member left; s.mu is held.
func (s *Server) roomFor(id string, verifier []byte, from *addrState) (*room, *closeReason) {
	r := s.rooms[id]
	switch {
	case r == nil:
		if len(s.rooms) >= s.cfg.MaxRooms {
			s.limited.add(LimitRooms)
			return nil, refuse(protocol.CodeTooMany, "too many rooms on this server; try again later")
		}
		if from != nil && !s.addrs.makeRoom(from) {
			s.limited.add(LimitRoomsPerAddr)
			return nil, refuse(protocol.CodeTooMany, fmt.Sprintf(
				"too many rooms made from your address (at most %d at once); use one of them or try again later", s.cfg.MaxRoomsPerAddr))
		}
		r = newRoom(id, auth.HashVerifier(verifier))
		r.maker = from
		s.rooms[id] = r
	case len(r.members) == 0:
		r.verifier = auth.HashVerifier(verifier)
		clear(r.files)
	case !auth.CheckVerifier(r.verifier, verifier):
		return nil, refuse(protocol.CodeBadVerifier,
			"wrong room verifier: you do not hold this room's secret")
	}
	return r, nil
}

// welcome lists the other known members of r, sorted by id.
func (s *Server) welcome(r *room, self *member) *protocol.Message {
	var others []protocol.MemberInfo
	for _, m := range r.members {
		if m != self {
			others = append(others, protocol.MemberInfo{Member: m.id, Pub: m.pub, MAC: m.mac, Online: m.conn != nil || m.node != ""})
		}
	}
	slices.SortFunc(others, func(a, b protocol.MemberInfo) int { return strings.Compare(a.Member, b.Member) })
	ttl := int((s.cfg.Relay.TTL + time.Second - 1) / time.Second)
	w := &protocol.Message{Type: protocol.TypeWelcome, V: protocol.Version, Member: self.id, Members: others, TTL: ttl}
	w.ICE, w.Expires = s.ice(turnUser(r.id, self.id), self.conn.host)
	return w
}

// turnUser is the TURN user id a member's credentials are minted for:
// the member in its room, so a member id reused in another room neither
// shares its TURN quota nor can have its credentials revoked from there.
func turnUser(room, member string) string { return member + "." + room }

// ice returns the member's ICE servers and their expiry (unix seconds).
func (s *Server) ice(user, host string) ([]protocol.ICEServer, int64) {
	if s.cfg.ICE == nil {
		return nil, 0
	}
	servers, exp := s.cfg.ICE(user, host)
	if len(servers) == 0 {
		return nil, 0
	}
	return servers, exp.Unix()
}
