package signaling

// Sweep expires relay items, forgets members offline longer than the relay TTL
// (the others see them leave; senders of files they had not finished get
// undeliverable), drops finished or idle file states, and deletes rooms with
// no members and no items. Run sweeps every 5 s; an embedder that serves
// Handler() without Run (or drives Config.Now itself) calls Sweep.
func (s *Server) Sweep() {
	s.store.Expire()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.rooms {
		for _, m := range r.members {
			if m.conn == nil && now.Sub(m.offlineSince) > s.cfg.Relay.TTL {
				s.forgetLocked(r, m, "the member was offline longer than the relay TTL")
			}
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
