package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"cloakroom/client/transfer"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

func newSessionID() string { return uuid.NewString() }

// p2pResult is what happened to one recipient on the peer-to-peer rungs.
type p2pResult struct {
	member   string
	path     protocol.Path // the path that delivered, if any
	err      error         // why it did not
	fallback bool          // nothing connected; the relay store takes over (auto)
	midFile  bool          // connected, then broke before the receiver's verdict
}

// sendP2P tries each rung of the ladder for one recipient and streams the
// file on the first that connects. It reports on outcome, exactly once, as
// soon as it knows: "" once connected, the member's id when the relay store
// must take over. Recipients are independent: each runs in its own
// goroutine, so a slow or failing one does not hold up the others.
func (c *Client) sendP2P(ctx context.Context, member string, f *os.File, man *crypto.Manifest, key []byte, outcome chan<- string) p2pResult {
	var errs []error
	for _, mode := range c.opts.Transport.Ladder() {
		p, err := c.peers.offer(member, mode)
		if err == nil {
			err = p.waitReady(ctx, c.opts.ICETimeout)
		}
		if err != nil {
			if p != nil { // tell the peer to drop its half of the attempt
				_ = c.room.sendSignal(member, &protocol.Signal{Kind: protocol.SignalBye, Session: p.session})
			}
			c.log.Info("peer-to-peer rung failed", "member", short8(member), "mode", mode, "err", err)
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		outcome <- ""
		path := p.path()
		err = c.streamFile(ctx, p, path, f, man, key)
		_ = c.room.sendSignal(member, &protocol.Signal{Kind: protocol.SignalBye, Session: p.session})
		p.close()
		if err != nil {
			// The receiver's own verdict (a failed check) is final; a broken
			// session is not.
			mid := !errors.Is(err, ErrFileLost) && ctx.Err() == nil
			return p2pResult{member: member, midFile: mid, err: fmt.Errorf("%s via %s: %w", short8(member), path, err)}
		}
		return p2pResult{member: member, path: path}
	}
	if c.opts.Transport == protocol.TransportAuto && ctx.Err() == nil {
		outcome <- member
		return p2pResult{member: member, fallback: true}
	}
	outcome <- ""
	return p2pResult{member: member, err: fmt.Errorf("%s: %w", short8(member), errors.Join(errs...))}
}

// streamFile sends the manifest and every chunk over a confirmed data
// channel and waits for the receiver's verdict. The chunks are the very same
// sealed bytes the relay would carry.
func (c *Client) streamFile(ctx context.Context, p *peerConn, path protocol.Path, f *os.File, man *crypto.Manifest, key []byte) error {
	fid := uuid.MustParse(man.File)
	events := listenReceiver(p, fid)
	sealed, err := c.sealManifest(man)
	if err != nil {
		return fmt.Errorf("seal manifest: %w", err)
	}
	if err := p.send(ctx, protocol.AppendDC(nil, &protocol.DCMessage{Kind: protocol.DCManifest, File: fid, Chunks: man.Chunks, Sealed: sealed})); err != nil {
		return err
	}
	ciph, err := crypto.NewChunkCipher(key, c.keys.RoomID, c.id, fid, man.Chunks, man.Size)
	if err != nil {
		return err
	}
	prog := func(n int64) {
		c.progress(Progress{File: man.File, Name: man.Name, Peer: p.member, Sending: true, Bytes: n, Total: man.Size, Path: path})
	}
	err = transfer.SealChunks(f, f.Name(), man, ciph, nil, func(i uint32, frame []byte) error {
		for drained := false; !drained; {
			select {
			case m := <-events.progress:
				dcProgress(m, man, prog)
			default:
				drained = true
			}
		}
		return p.send(ctx, frame)
	})
	if err != nil {
		return err
	}
	return awaitVerdict(ctx, p, events, man, prog)
}

// receiverEvents are a receiver's messages to a sending session: progress
// (dropped when the sender is behind) and its one verdict on the file.
type receiverEvents struct {
	progress chan *protocol.DCMessage
	verdict  chan *protocol.DCMessage
}

// listenReceiver installs the handler of a sending session for file fid.
func listenReceiver(p *peerConn, fid uuid.UUID) receiverEvents {
	ev := receiverEvents{progress: make(chan *protocol.DCMessage, 64), verdict: make(chan *protocol.DCMessage, 1)}
	p.setHandler(func(data []byte) {
		m, err := protocol.ParseDC(data)
		if err != nil || m.File != fid || (m.Kind != protocol.DCProgress && m.Kind != protocol.DCDone) {
			p.fail(fmt.Errorf("unexpected message from receiver %s: %w", short8(p.member), ErrProtocol))
			return
		}
		to := ev.progress
		if m.Kind == protocol.DCDone {
			to = ev.verdict // the first verdict counts; a repeat is dropped
		}
		select {
		case to <- m:
		default:
		}
	})
	return ev
}

// awaitVerdict waits for the receiver's verdict on the whole file.
func awaitVerdict(ctx context.Context, p *peerConn, ev receiverEvents, man *crypto.Manifest, prog func(int64)) error {
	for {
		select {
		case m := <-ev.progress:
			dcProgress(m, man, prog)
		case m := <-ev.verdict:
			if m.Failed {
				return fmt.Errorf("receiver reports: %s: %w", m.Reason, ErrFileLost)
			}
			prog(man.Size)
			return nil
		case <-p.failed:
			return p.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// dcProgress reports a receiver's progress message.
func dcProgress(m *protocol.DCMessage, man *crypto.Manifest, prog func(int64)) {
	if m.Kind == protocol.DCProgress {
		prog(min(int64(m.Chunks)*int64(man.ChunkSize), man.Size))
	}
}

// receiveDC handles a message on a confirmed data channel from a sender:
// a manifest, or a chunk, which goes the same way as relay chunks (opened
// here, written and hashed by the Receiver's Run loop).
func (c *Client) receiveDC(p *peerConn, data []byte) {
	if k, err := protocol.FrameKind(data); err == nil && k == protocol.FrameChunkUp {
		ch, err := protocol.ParseChunkUp(data)
		if err != nil {
			p.fail(fmt.Errorf("malformed chunk from %s: %w", short8(p.member), err))
			return
		}
		_ = c.recv.Chunk(c.ctx, &protocol.ChunkDown{Sender: uuid.MustParse(p.member), Chunk: ch}, p.source())
		return
	}
	m, err := protocol.ParseDC(data)
	if err != nil || m.Kind != protocol.DCManifest {
		p.fail(fmt.Errorf("unexpected message from %s: %w", short8(p.member), ErrProtocol))
		return
	}
	meta := crypto.EnvelopeMeta{Sender: p.member, File: uuid.UUID(m.File).String(), Chunks: m.Chunks}
	man, err := c.keys.OpenManifest(meta, m.Sealed)
	if err != nil {
		p.fail(fmt.Errorf("manifest from %s: %v: %w", short8(p.member), err, ErrIntegrity))
		return
	}
	if err := c.recv.Start(c.ctx, man, p.member, p.source()); err != nil {
		_ = p.send(context.Background(), protocol.AppendDC(nil, &protocol.DCMessage{Kind: protocol.DCDone, File: m.File, Failed: true, Reason: err.Error()}))
	}
}

// peerSource is a peer session as the ChunkSource of a reception: its
// path, fixed when the file arrived; its end; and the sender to report to.
type peerSource struct {
	p    *peerConn
	path protocol.Path
}

func (p *peerConn) source() peerSource { return peerSource{p: p, path: p.path()} }

func (s peerSource) Path() protocol.Path   { return s.path }
func (s peerSource) Gone() <-chan struct{} { return s.p.failed }

// Report tells a peer-to-peer sender about a reception's progress or its end.
func (s peerSource) Report(m *protocol.DCMessage) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.p.send(ctx, protocol.AppendDC(nil, m)); err != nil {
		s.p.set.log.Debug("could not tell the sender", "err", err)
	}
}
