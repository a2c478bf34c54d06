package client

import (
	"time"

	"cloakroom/internal/protocol"
)

func (c *Client) welcome(m *protocol.Message) {
	c.mu.Lock()
	c.ttl = time.Duration(m.TTL) * time.Second
	c.ice, c.iceExp = m.ICE, time.Unix(m.Expires, 0)
	listed := map[string]bool{}
	for _, mi := range m.Members {
		listed[mi.Member] = true
		c.addMemberLocked(mi.Member, mi.Pub, mi.MAC, mi.Online)
	}
	for id := range c.members { // members that left while we were away
		if !listed[id] {
			delete(c.members, id)
		}
	}
	c.mu.Unlock()
}

// addMemberLocked records a member if its announcement verifies under the
// room's announcement key; the server cannot add members of its own.
func (c *Client) addMemberLocked(id, pub64, mac64 string, online bool) *Member {
	if id == c.id {
		return nil
	}
	pub, err1 := protocol.DecodeB64(pub64)
	mac, err2 := protocol.DecodeB64(mac64)
	if err1 != nil || err2 != nil || c.keys.VerifyAnnounce(id, pub, mac) != nil {
		c.log.Warn("ignoring member with a bad announcement (server misbehaving?)", "member", id)
		return nil
	}
	if old, ok := c.members[id]; ok && string(old.Pub) != string(pub) {
		c.log.Warn("ignoring member whose key changed", "member", id)
		return nil
	}
	mem := &Member{ID: id, Pub: pub, Online: online}
	c.members[id] = mem
	return mem
}

func (c *Client) presence(m *protocol.Message) {
	c.mu.Lock()
	var mem *Member
	switch m.Event {
	case protocol.EventJoin:
		mem = c.addMemberLocked(m.Member, m.Pub, m.MAC, true)
	case protocol.EventOnline, protocol.EventOffline:
		if mem = c.members[m.Member]; mem != nil {
			mem.Online = m.Event == protocol.EventOnline
		}
	case protocol.EventLeave:
		if mem = c.members[m.Member]; mem != nil {
			mem.Online = false
			delete(c.members, m.Member)
		}
	}
	var snapshot Member
	if mem != nil {
		snapshot = *mem
	}
	sends := make([]*sendState, 0, len(c.sends))
	for _, s := range c.sends {
		sends = append(sends, s)
	}
	c.mu.Unlock()
	if mem == nil {
		return
	}
	for _, s := range sends {
		s.presence(m.Member, m.Event)
	}
	if c.opts.OnPresence != nil {
		c.opts.OnPresence(snapshot, m.Event)
	}
}
