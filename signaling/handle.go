package signaling

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/google/uuid"

	"cloakroom/internal/cluster"
	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// handleMsg stores a sealed envelope for every other known member.
func (c *conn) handleMsg(m *protocol.Message) {
	if m.ID != 0 || m.From != "" || m.File != "" || m.Chunks != 0 {
		c.badRequest("msg from a client carries only data", "")
		return
	}
	data, err := protocol.DecodeB64(m.Data)
	if err != nil {
		c.badRequest("malformed data", "")
		return
	}
	s := c.s
	s.mu.Lock()
	var owed []string
	if s.currentLocked(c) {
		for id := range c.room.members {
			if id != c.mem.id {
				owed = append(owed, id)
			}
		}
	}
	s.mu.Unlock()
	if len(owed) == 0 {
		return
	}
	it := store.Item{Room: c.room.id, Sender: c.mem.id, Origin: c.origin(), Kind: store.KindEnvelope, Data: data}
	c.put(it, owed, "")
}

// put stores it, waiting up to PutTimeout for space (the reader blocks: TCP
// back-pressure on the uploader), and reports a failure to the client.
func (c *conn) put(it store.Item, owed []string, file string) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.PutTimeout)
	defer cancel()
	id, err := c.s.store.Put(ctx, it, owed)
	switch {
	case err == nil && id == 0:
		return true
	case err == nil:
		if c.s.bus != nil {
			c.s.keys.add(it.Room, c.s.itemKey(id), id)
			c.s.emitItem(ctx, &cluster.Event{Type: cluster.TypeItem, Room: it.Room, Key: c.s.itemKey(id), Kind: uint8(it.Kind),
				Sender: it.Sender, Origin: it.Origin, File: it.File, Owed: owed, Data: it.Data})
		}
		return true
	case errors.Is(err, store.ErrTooLarge):
		c.s.limited.add(LimitTooLarge)
		c.sendError(protocol.CodeTooLarge, "item larger than the relay allows", file)
	case errors.Is(err, store.ErrClosed):
		c.sendError(protocol.CodeInternal, "relay closed", file)
	case c.ctx.Err() != nil:
		// The connection is ending: nobody to tell.
	default:
		c.s.limited.add(LimitRelayFull)
		c.sendError(protocol.CodeRelayFull, "relay full: retry later", file)
	}
	c.s.log.Debug("signaling: put failed", "err", err)
	return false
}

// handleFile starts a relay transfer: the manifest is owed to the members
// online now, and so will be the file's chunks.
func (c *conn) handleFile(m *protocol.Message) {
	env, err := protocol.DecodeB64(m.Data)
	if err != nil {
		c.badRequest("malformed data", m.File)
		return
	}
	f, fresh, refusal := c.s.openFile(c, m.File, m.Chunks, m.Recipients)
	switch {
	case refusal == protocol.CodeBadRequest:
		c.badRequest("file id already in use", m.File)
		return
	case refusal != "":
		c.sendError(refusal, "too many transfers in this room; retry later", m.File)
		return
	case f == nil:
		return // no longer the member's connection
	case fresh:
		// The manifest item carries the chunk count ahead of the envelope,
		// so delivery needs no file state.
		data := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(env)), m.Chunks)
		it := store.Item{Room: c.room.id, Sender: c.mem.id, Origin: c.origin(), Kind: store.KindEnvelope, File: f.id, Data: append(data, env...)}
		if !c.put(it, f.order, f.id) {
			c.s.dropFile(c.room, f)
			return
		}
	}
	c.sendMsg(&protocol.Message{Type: protocol.TypeFileOK, File: f.id, Recipients: f.order})
}

// openFile returns the state of file id for c's member, creating it owed to
// the members online now (fresh) — only those of them in want, when want is
// given — or an error code for the client.
func (s *Server) openFile(c *conn, id string, chunks uint32, want []string) (f *fileState, fresh bool, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.currentLocked(c) {
		return nil, false, ""
	}
	r, me := c.room, c.mem.id
	if f := r.files[id]; f != nil {
		if f.sender != me || f.chunks != chunks {
			return nil, false, protocol.CodeBadRequest
		}
		return f, false, "" // the same file again: same answer
	}
	if len(r.files) >= maxFilesPerRoom {
		return nil, false, protocol.CodeRateLimited
	}
	var recips []string
	for mid, m := range r.members {
		if mid != me && (m.conn != nil || m.node != "") && (want == nil || slices.Contains(want, mid)) {
			recips = append(recips, mid)
		}
	}
	slices.Sort(recips)
	f = newFile(id, me, chunks, recips, s.now())
	r.files[id] = f
	return f, true, ""
}

// dropFile forgets f if it is still r's state for its id.
func (s *Server) dropFile(r *room, f *fileState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.files[f.id] == f {
		delete(r.files, f.id)
	}
}

// handleChunk stores one ChunkUp frame (which it may keep), owed to the
// file's recipients.
func (c *conn) handleChunk(frame []byte) {
	ch, err := protocol.ParseChunkUp(frame)
	if err != nil {
		c.badRequest("malformed chunk frame", "")
		return
	}
	id := uuid.UUID(ch.File).String()
	owed, code := c.s.chunkOwed(c, id, ch.Count)
	switch code {
	case "":
	case protocol.CodeBadRequest:
		c.badRequest("chunk count does not match the file", id)
		return
	default:
		c.sendError(code, "no such file: send file first", id)
		return
	}
	if len(owed) == 0 {
		return
	}
	// The address's upload rate: the reader waits for it (back-pressure,
	// like a full relay); nothing is refused.
	ok, waited := c.wait(c.addr.upload, len(frame), c.s.cfg.PutTimeout)
	if waited || !ok {
		c.s.limited.add(LimitUploadRate)
	}
	if !ok {
		if c.ctx.Err() == nil {
			c.sendError(protocol.CodeRateLimited, "relay upload over the rate limit: retry later", id)
		}
		return
	}
	it := store.Item{Room: c.room.id, Sender: c.mem.id, Origin: c.origin(), Kind: store.KindChunk, File: id, Data: frame}
	c.put(it, owed, id)
}

// chunkOwed returns the members a chunk of file id is owed to, or an error
// code.
func (s *Server) chunkOwed(c *conn, id string, count uint32) ([]string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.currentLocked(c) {
		return nil, ""
	}
	f := c.room.files[id]
	switch {
	case f == nil || f.sender != c.mem.id:
		return nil, protocol.CodeNoSuchFile
	case f.chunks != count:
		return nil, protocol.CodeBadRequest
	}
	f.touched = s.now()
	return f.pending(), ""
}

// handleAck acks items in the store, frees window space, and counts chunks.
func (c *conn) handleAck(m *protocol.Message) {
	var acks []chunkAck
	released := false
	var ev *cluster.Event // the acks other nodes hear of (a cluster only)
	if c.s.bus != nil {
		ev = &cluster.Event{Type: cluster.TypeAck, Room: c.room.id, Member: c.mem.id}
	}
	for _, id := range m.IDs {
		fl, ok := c.win.release(id)
		released = released || ok
		it, err := c.s.store.Ack(c.room.id, c.mem.id, id)
		if err != nil {
			continue // not owed (already acked, expired): ignored
		}
		if ev != nil {
			ev.Keys = append(ev.Keys, c.s.keyFor(c.room.id, id))
			ev.Indexes = append(ev.Indexes, ackIndex(fl, ok))
		}
		if it.Kind != store.KindChunk || it.File == "" {
			continue
		}
		acks = append(acks, chunkAck{file: it.File, index: fl.index, known: ok && fl.chunk})
	}
	if released {
		c.win.wakeUp()
	}
	if ev != nil && len(ev.Keys) > 0 {
		c.s.emit(ev)
	}
	if len(acks) > 0 {
		c.s.chunksAcked(c, acks)
	}
}

// ackIndex is a chunk's index+1 for an ack event (0: not a chunk, or unknown).
func ackIndex(fl flight, known bool) uint32 {
	if !known || !fl.chunk {
		return 0
	}
	return fl.index + 1
}

// handleSignal forwards a sealed signal to one online member of the room.
func (c *conn) handleSignal(m *protocol.Message) {
	if m.From != "" || m.To == "" {
		c.badRequest("signal needs to and data", "")
		return
	}
	s := c.s
	b := s.encode(&protocol.Message{Type: protocol.TypeSignal, From: c.mem.id, Data: m.Data})
	s.mu.Lock()
	var to *member
	if s.currentLocked(c) {
		to = c.room.members[m.To]
	}
	ok := to != nil && to.conn != nil
	if ok {
		to.conn.send(b)
	}
	var node string
	var ev *cluster.Event
	if to != nil && to.conn == nil && to.node != "" {
		// The sender's announcement goes along: the signal may overtake
		// its presence event (another subject), and must not arrive first.
		node, ev = to.node, s.presenceEvent(c.room, c.mem, protocol.EventOnline)
		ev.Type, ev.Event, ev.Node, ev.To, ev.Data = cluster.TypeSignal, "", s.bus.Node(), m.To, []byte(m.Data)
	}
	s.mu.Unlock()
	if node != "" {
		ok = s.bus.Send(node, ev) == nil
	}
	if !ok {
		c.sendError(protocol.CodeNoSuchMember, "no such member online in this room", "")
	}
}

// origin is the client's address as the relay counts it against the
// per-address quota ("" for a connection without one, e.g. in tests).
func (c *conn) origin() string {
	if c.addr == nil {
		return ""
	}
	return c.addr.key
}
