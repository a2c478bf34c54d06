package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"cloakroom/client/transfer"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// sendState tracks one round of an outgoing file through the relay; the
// read loop feeds it server events.
type sendState struct {
	file   string
	chunks uint32
	events chan *protocol.Message
	sched  *transfer.Schedule
	mu     sync.Mutex
	fail   error
	failed chan struct{}
}

// sendWindow bounds how far the upload runs ahead of the slowest online
// recipient: what a server restart loses, and what the relay holds for one
// file. At 64 MiB/s and more it still keeps the pipe full on loopback.
const sendWindow = 16 << 20

// haveWait bounds how long a round that continues a file (after a broken
// session or a lost server) waits for its recipients' have signals.
const haveWait = 2 * time.Second

func (s *sendState) presence(member, event string) {
	m := &protocol.Message{Type: protocol.TypePresence, Member: member, Event: event}
	s.sched.Note(m)
	select {
	case s.events <- m:
	default:
	}
}

func (s *sendState) abort(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		s.fail = err
		close(s.failed)
	}
}

// fileEvent hands a server event to the send it concerns.
func (c *Client) fileEvent(m *protocol.Message) {
	c.mu.Lock()
	s := c.sends[m.File]
	c.mu.Unlock()
	if s == nil {
		return
	}
	if m.Type == protocol.TypeError {
		s.abort(serverError(m))
		return
	}
	s.sched.Note(m)
	select {
	case s.events <- m:
	default:
		c.log.Warn("send event queue full; dropping progress", "file", m.File)
	}
}

// maxRounds bounds how often one send starts over after losing the server.
const maxRounds = 100

// sendRelay sends the file through the server's relay store to recipients.
// When the connection to the server breaks (a server restart loses the relay
// store), it waits for the client to reconnect and for the recipients to come
// back, and announces the file again as a new round — a fresh file id and
// key, so no chunk key and nonce are ever used twice — and each recipient's
// "have" signal lets it skip what every recipient already holds.
func (c *Client) sendRelay(ctx context.Context, o *outgoing, man *crypto.Manifest, key []byte, recipients []string, resumed bool) error {
	pending := recipients
	for round := 1; ; round++ {
		o.mu.Lock()
		o.rep.Rounds = round
		o.mu.Unlock()
		gen := c.room.connGeneration()
		left, err := c.relayRound(ctx, o, man, key, pending, resumed || round > 1)
		if err == nil || !errors.Is(err, ErrUnreachable) || ctx.Err() != nil || round == maxRounds {
			return err
		}
		c.log.Info("connection lost mid-send; resuming after reconnect", "name", man.Name, "round", round, "err", err)
		if err := c.room.waitNewConn(ctx, gen); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		pending = c.awaitReturn(ctx, o, left)
		if len(pending) == 0 {
			return nil
		}
		if man, key, err = transfer.Renew(man); err != nil {
			return err
		}
	}
}

// awaitReturn waits, after a reconnect, for the members still owed the file
// to be online again; those not back within OfflineGrace are reported failed.
func (c *Client) awaitReturn(ctx context.Context, o *outgoing, members []string) []string {
	deadline := time.Now().Add(c.opts.OfflineGrace)
	if err := c.room.await(ctx, deadline, func() bool { return len(c.room.offline(members)) == 0 }); errors.Is(err, ErrClosed) {
		return nil
	}
	back := c.stillOnline(members)
	o.mu.Lock()
	for _, m := range members {
		if !slices.Contains(back, m) {
			o.rep.Failed[m] = "did not come back after the connection to the server broke"
		}
	}
	o.mu.Unlock()
	return back
}

// relayRound announces the file to recipients, uploads the chunks they do
// not all hold, and waits for delivery. On error it returns the recipients
// still owed the file.
func (c *Client) relayRound(ctx context.Context, o *outgoing, man *crypto.Manifest, key []byte, recipients []string, resumed bool) ([]string, error) {
	s := &sendState{file: man.File, chunks: man.Chunks, events: make(chan *protocol.Message, 4096), failed: make(chan struct{}),
		sched: transfer.NewSchedule(man.Chunks, recipients)}
	c.mu.Lock()
	c.sends[man.File] = s
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.sends, man.File)
		c.mu.Unlock()
	}()
	got, err := c.announceFile(ctx, s, man, recipients)
	if err != nil {
		return recipients, err
	}
	s.sched.Narrow(got)
	if resumed {
		// The recipients likely hold part of the file: give their have
		// signals a moment, or the first window goes out again.
		t := time.NewTimer(haveWait)
		select {
		case <-s.sched.Heard():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	var leg *relayLeg // relay first: sessions may take recipients over
	if !resumed && o.leg != nil {
		leg = o.leg
		leg.attach(s.sched)
	}
	if err := c.uploadChunks(ctx, s, o, man, key, leg); err != nil && !errors.Is(err, errTakenOver) {
		return got, err
	}
	return c.awaitDelivery(ctx, s, o, man, got, leg)
}

// onXfer takes an xfer signal (docs/PROTOCOL.md "Transfer control"): the
// sender of a file we receive cancelled it, or a recipient of a file we
// send through the relay cancelled or declined it (that recipient is then
// reported failed with the reason; peer-to-peer recipients say so in their
// DC_DONE). Other ops are for pages and ignored.
func (c *Client) onXfer(from string, b *protocol.Signal) {
	switch b.Op {
	case protocol.XferCancel, protocol.XferDecline:
	default:
		return
	}
	if b.Op == protocol.XferCancel && c.recv.Cancel(c.ctx, b.File, from) {
		c.log.Info("the sender cancelled a file", "file", b.File, "from", short8(from))
		return
	}
	c.mu.Lock()
	s := c.sends[b.File]
	c.mu.Unlock()
	if s == nil || !s.sched.IsTarget(from) {
		return
	}
	reason := protocol.ReasonCancelled
	if b.Op == protocol.XferDecline {
		reason = protocol.ReasonDeclined
	}
	select {
	case s.events <- &protocol.Message{Type: protocol.TypeUndeliverable, File: b.File, Member: from, Error: reason}:
	default:
	}
}

// routeHave takes a recipient's have signal for a file being sent.
func (c *Client) routeHave(from string, b *protocol.Signal) {
	c.mu.Lock()
	s := c.sends[b.File]
	c.mu.Unlock()
	if s == nil {
		return
	}
	if !s.sched.IsTarget(from) {
		c.log.Warn("have signal from a member that is not a recipient; ignored", "from", short8(from))
		return
	}
	if b.Done {
		_ = s.sched.SetHave(from, [][2]uint32{{0, s.chunks}})
		select {
		case s.events <- &protocol.Message{Type: protocol.TypeDelivered, File: b.File, Member: from}:
		default:
		}
		return
	}
	if err := s.sched.SetHave(from, b.Have); err != nil {
		c.log.Warn("malformed have signal; ignored", "from", short8(from), "err", err)
		return
	}
	c.log.Info("recipient holds chunks already", "member", short8(from), "file", b.File, "ranges", len(b.Have))
}

func (c *Client) announceFile(ctx context.Context, s *sendState, man *crypto.Manifest, recipients []string) ([]string, error) {
	sealed, err := c.sealManifest(man)
	if err != nil {
		return nil, fmt.Errorf("send: seal manifest: %w", err)
	}
	msg := &protocol.Message{Type: protocol.TypeFile, File: man.File, Chunks: man.Chunks, Data: protocol.EncodeB64(sealed), Recipients: recipients}
	if err := c.room.writeJSON(msg); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	for {
		select {
		case m := <-s.events:
			if m.Type == protocol.TypeFileOK {
				if len(m.Recipients) == 0 {
					return nil, fmt.Errorf("send: %w", ErrNoMembers)
				}
				return m.Recipients, nil
			}
		case <-s.failed:
			return nil, fmt.Errorf("send: %w", s.fail)
		case <-ctx.Done():
			return nil, fmt.Errorf("send: %w", ctx.Err())
		}
	}
}

func (c *Client) uploadChunks(ctx context.Context, s *sendState, o *outgoing, man *crypto.Manifest, key []byte, leg *relayLeg) error {
	fid := uuid.MustParse(man.File)
	ciph, err := crypto.NewChunkCipher(key, c.keys.RoomID, c.id, fid, man.Chunks, man.Size)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var sent int64
	var n uint32 // chunks uploaded this round
	window := uint32(max(sendWindow/man.ChunkSize, 1))
	return transfer.SealChunks(o.f, o.f.Name(), man, ciph, s.sched.AllHave, func(i uint32, frame []byte) error {
		w := window
		if leg != nil && leg.racing() {
			w = min(window, max(racingWindow/uint32(man.ChunkSize), 1))
		}
		for s.sched.Lagging(n, w) {
			select {
			case <-s.sched.Moved():
			case <-s.failed:
				return fmt.Errorf("send: %w", s.fail)
			case <-ctx.Done():
				return fmt.Errorf("send: %w", ctx.Err())
			}
		}
		if leg != nil && !leg.commit(i) {
			c.log.Info("relay upload stopped: peer-to-peer sessions took over", "name", man.Name, "chunks_uploaded", n)
			return errTakenOver
		}
		n++
		if err := c.room.write(websocket.BinaryMessage, frame); err != nil {
			return fmt.Errorf("send: upload chunk %d: %w", i, err)
		}
		select {
		case <-s.failed:
			return fmt.Errorf("send: %w", s.fail)
		default:
		}
		n := int64(man.ChunkSize)
		if i == man.Chunks-1 {
			n = man.Size - int64(i)*int64(man.ChunkSize)
		}
		o.mu.Lock()
		o.rep.Uploaded += n
		o.mu.Unlock()
		sent = max(sent, int64(i)*int64(man.ChunkSize)+n)
		c.progress(Progress{File: man.File, Name: man.Name, Sending: true, Bytes: sent, Total: man.Size, Path: protocol.PathRelay})
		return nil
	})
}

// awaitDelivery waits for delivered/undeliverable for every recipient. A
// recipient that goes offline gets OfflineGrace to come back.
func (c *Client) awaitDelivery(ctx context.Context, s *sendState, o *outgoing, man *crypto.Manifest, recipients []string, leg *relayLeg) ([]string, error) {
	pending := map[string]bool{}
	for _, r := range recipients {
		pending[r] = true
	}
	var takenOver <-chan struct{}
	dropTaken := func() {} // a recipient a session took over gets its verdict there
	if leg != nil {
		takenOver = leg.changed
		dropTaken = func() {
			for r := range pending {
				if leg.isTaken(r) {
					delete(pending, r)
				}
			}
		}
	}
	dropTaken()
	offline := map[string]time.Time{}
	grace := time.NewTimer(time.Hour) // armed while a recipient is offline
	grace.Stop()
	defer grace.Stop()
	for len(pending) > 0 {
		select {
		case <-takenOver:
			dropTaken()
		case m := <-s.events:
			o.mu.Lock()
			c.sendEvent(m, man, pending, offline, o.rep)
			o.mu.Unlock()
			c.armGrace(grace, offline)
		case now := <-grace.C:
			o.mu.Lock()
			for r, since := range offline {
				if now.Sub(since) < c.opts.OfflineGrace {
					continue
				}
				delete(offline, r)
				if pending[r] {
					delete(pending, r)
					o.rep.Failed[r] = "went offline mid-transfer (the relay keeps its chunks until they expire)"
				}
			}
			o.mu.Unlock()
			c.armGrace(grace, offline)
		case <-s.failed:
			o.mu.Lock()
			left := make([]string, 0, len(pending))
			for r := range pending {
				left = append(left, r)
			}
			o.mu.Unlock()
			return left, fmt.Errorf("send: %w", s.fail)
		case <-ctx.Done():
			return nil, fmt.Errorf("send: %w", ctx.Err())
		}
	}
	return nil, nil
}

// armGrace sets t to fire when the first recipient now offline runs out of
// OfflineGrace (and not at all while every recipient is online).
func (c *Client) armGrace(t *time.Timer, offline map[string]time.Time) {
	t.Stop()
	var first time.Time
	for _, since := range offline {
		if first.IsZero() || since.Before(first) {
			first = since
		}
	}
	if !first.IsZero() {
		t.Reset(time.Until(first.Add(c.opts.OfflineGrace)))
	}
}

func (c *Client) sendEvent(m *protocol.Message, man *crypto.Manifest, pending map[string]bool, offline map[string]time.Time, rep *SendReport) {
	if !pending[m.Member] {
		return
	}
	switch m.Type {
	case protocol.TypeProgress:
		c.progress(Progress{File: man.File, Name: man.Name, Peer: m.Member, Sending: true, Bytes: min(int64(m.Acked)*int64(man.ChunkSize), man.Size), Total: man.Size, Path: protocol.PathRelay})
	case protocol.TypeDelivered:
		delete(pending, m.Member)
		rep.Delivered = append(rep.Delivered, m.Member)
		rep.Paths[m.Member] = protocol.PathRelay
		c.progress(Progress{File: man.File, Name: man.Name, Peer: m.Member, Sending: true, Bytes: man.Size, Total: man.Size, Path: protocol.PathRelay, Done: true})
	case protocol.TypeUndeliverable:
		delete(pending, m.Member)
		rep.Failed[m.Member] = m.Error
	case protocol.TypePresence:
		switch m.Event {
		case protocol.EventOffline:
			offline[m.Member] = time.Now()
		case protocol.EventOnline:
			delete(offline, m.Member)
		case protocol.EventLeave:
			delete(pending, m.Member)
			rep.Failed[m.Member] = "left the room"
		}
	}
}
