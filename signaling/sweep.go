package signaling

import "time"

// Sweep expires relay items, forgets members offline longer than the relay TTL
// (the others see them leave; senders of files they had not finished get
// undeliverable), drops finished or idle file states, and deletes rooms with
// no members and no items. Run sweeps every 5 s; an embedder that serves
// Handler() without Run (or drives Config.Now itself) calls Sweep.
func (s *Server) Sweep() {
	s.store.Expire()
	if s.bus != nil {
		s.keys.prune(s.store.Has)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.rooms {
		for _, m := range r.members {
			if m.conn == nil && m.node == "" && now.Sub(m.offlineSince) > s.cfg.Relay.TTL {
				s.forgetLocked(r, m, "the member was offline longer than the relay TTL")
				continue
			}
			if m.nodeGone && (m.conn != nil || m.node != "" || now.Sub(m.offlineSince) > nodeGoneGrace) {
				m.nodeGone = false
				if m.conn == nil && m.node == "" {
					s.store.SetOnline(r.id, m.id, false) // not back: its chunks may be evicted now
				}
			}
			s.checkStallLocked(r, m, now)
		}
		s.sweepFilesLocked(r, now)
		if len(r.members) == 0 && s.store.RoomStats(id).Items == 0 {
			delete(s.rooms, id)
			if r.maker != nil {
				s.addrs.roomGone(r.maker)
			}
		}
	}
}

// checkStallLocked marks an online member that has acked nothing for
// AckStall while items were in flight as offline for the relay store, so
// chunks owed only to it may be evicted when an upload needs the space
// (their senders hear undeliverable), and marks it online again once it
// acks. One silent member cannot hold the relay until the TTL.
func (s *Server) checkStallLocked(r *room, m *member, now time.Time) {
	if m.conn == nil {
		m.stalled = false
		return
	}
	stalled := m.conn.win.stalled(now, s.cfg.AckStall)
	if stalled == m.stalled {
		return
	}
	m.stalled = stalled
	s.store.SetOnline(r.id, m.id, !stalled)
	if stalled {
		s.log.Info("signaling: member stopped acking; its relay items may be evicted for space", "room", r.id, "member", m.id)
	}
}
