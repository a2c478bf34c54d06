package client

import (
	"time"

	"cloakroom/internal/protocol"
)

// welcome takes the member list of a (re)join; it returns the members it
// lists online, which the caller challenges once the connection is in place.
func (r *room) welcome(m *protocol.Message) []string {
	r.mu.Lock()
	r.ttl = time.Duration(m.TTL) * time.Second
	r.ice, r.iceExp = m.ICE, time.Unix(m.Expires, 0)
	listed := map[string]bool{}
	var online []string
	for _, mi := range m.Members {
		listed[mi.Member] = true
		if mem := r.addMemberLocked(mi.Member, mi.Pub, mi.MAC, mi.Online); mem != nil && mem.Online {
			online = append(online, mem.ID)
		}
	}
	for id := range r.members { // members that left while we were away
		if !listed[id] {
			delete(r.members, id)
		}
	}
	r.changedLocked()
	r.mu.Unlock()
	return online
}

// addMemberLocked records a member if its announcement verifies under the
// room's announcement key; the server cannot add members of its own.
func (r *room) addMemberLocked(id, pub64, mac64 string, online bool) *Member {
	if id == r.id {
		return nil
	}
	pub, err1 := protocol.DecodeB64(pub64)
	mac, err2 := protocol.DecodeB64(mac64)
	if err1 != nil || err2 != nil || r.keys.VerifyAnnounce(id, pub, mac) != nil {
		r.log.Warn("ignoring member with a bad announcement (server misbehaving?)", "member", id)
		return nil
	}
	if old, ok := r.members[id]; ok && string(old.Pub) != string(pub) {
		r.log.Warn("ignoring member whose key changed", "member", id)
		return nil
	}
	mem := &Member{ID: id, Pub: pub, Online: online}
	r.members[id] = mem
	return mem
}

func (r *room) presence(m *protocol.Message) {
	r.mu.Lock()
	var mem *Member
	switch m.Event {
	case protocol.EventJoin:
		mem = r.addMemberLocked(m.Member, m.Pub, m.MAC, true)
	case protocol.EventOnline, protocol.EventOffline:
		if mem = r.members[m.Member]; mem != nil {
			mem.Online = m.Event == protocol.EventOnline
			mem.Verified = false
		}
	case protocol.EventLeave:
		if mem = r.members[m.Member]; mem != nil {
			mem.Online = false
			delete(r.members, m.Member)
		}
	}
	var snapshot Member
	if mem != nil {
		snapshot = *mem
		r.changedLocked()
	}
	r.mu.Unlock()
	if mem == nil {
		return
	}
	r.events.presence(m.Member, m.Event)
	if r.opts.OnPresence != nil {
		r.opts.OnPresence(snapshot, m.Event)
	}
	if snapshot.Online {
		r.challenge(m.Member)
	}
}

// Members returns the other members with verified announcements.
func (r *room) Members() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Member, 0, len(r.members))
	for _, m := range r.members {
		out = append(out, *m)
	}
	return out
}

// OnlineMembers returns the ids of the other members currently online.
func (r *room) OnlineMembers() []string {
	var ids []string
	for _, m := range r.Members() {
		if m.Online {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// challenge sends member a fresh ping; its pong marks it Verified. The
// write runs on its own goroutine (the read loop must not block on a
// write); it ends when the write does, at the latest when the connection
// closes.
func (r *room) challenge(member string) {
	nonce := randomSession() // 16 random bytes, hex, like a stamp session
	r.mu.Lock()
	r.pings[member] = nonce
	r.histMark[member] = r.histSeq
	r.mu.Unlock()
	go func() {
		if err := r.sendSignal(member, &protocol.Signal{Kind: protocol.SignalPing, Session: nonce}); err != nil {
			r.log.Debug("presence challenge not sent", "member", member, "err", err)
		}
	}()
}

// presenceSignal handles a ping (answered with a pong) or a pong (which
// verifies its member if it answers our last ping); false for other kinds.
func (r *room) presenceSignal(from string, body *protocol.Signal) bool {
	switch body.Kind {
	case protocol.SignalPing:
		go func() {
			if err := r.sendSignal(from, &protocol.Signal{Kind: protocol.SignalPong, Session: body.Session}); err != nil {
				r.log.Debug("presence answer not sent", "member", from, "err", err)
			}
		}()
		return true
	case protocol.SignalPong:
		r.mu.Lock()
		mem := r.members[from]
		ok := mem != nil && mem.Online && r.pings[from] == body.Session
		var snapshot Member
		var hist []protocol.HistItem
		if ok {
			delete(r.pings, from)
			mem.Verified = true
			snapshot = *mem
			// The history it gets is the chat seen up to our challenge;
			// what followed reached it live.
			hist = r.historyForLocked(from)
			r.changedLocked()
		}
		r.mu.Unlock()
		if ok && r.opts.OnPresence != nil {
			r.opts.OnPresence(snapshot, EventVerified)
		}
		if ok {
			r.events.verified(from, hist)
		}
		return true
	}
	return false
}

// EventVerified is the OnPresence event of a member that answered the
// presence challenge.
const EventVerified = "verified"
