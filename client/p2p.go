package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

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
func (c *Client) sendP2P(ctx context.Context, member string, e *entry, outcome chan<- string) p2pResult {
	var errs []error
	for _, mode := range c.opts.Transport.Ladder() {
		p, err := c.linkFor(member, mode)
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
		// The link stays up after the file: the member may fetch other
		// files over it, serve them, or get the next one.
		err = c.serveFile(ctx, p, path, e)
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

// linkFor returns a ready link with member on rung mode (the newest), or
// offers a new session.
func (c *Client) linkFor(member string, mode protocol.Mode) (*peerConn, error) {
	for _, p := range c.links.with(member) {
		if p.mode == mode && p.Err() == nil {
			return p, nil
		}
	}
	return c.peers.offer(member, mode)
}

// serveFile offers the file on a confirmed link as its origin: the
// manifest, every hash piece and a complete have; the receiver then pulls
// the chunks (the link's server answers its wants, choosing for "any" the
// chunks no one was sent yet) and this waits for its verdict.
func (c *Client) serveFile(ctx context.Context, p *peerConn, path protocol.Path, e *entry) error {
	man := e.man
	fid := uuid.MustParse(man.File)
	events := c.listenReceiver(p, fid)
	defer c.unlistenReceiver(p, fid)
	if err := p.send(ctx, protocol.AppendDC(nil, &protocol.DCMessage{Kind: protocol.DCManifest, File: fid, Chunks: man.Chunks, Sealed: e.env})); err != nil {
		return err
	}
	for piece := range uint32(e.hashes.Pieces()) {
		h, _ := e.hashes.Piece(piece)
		if err := p.send(ctx, protocol.AppendDC(nil, &protocol.DCMessage{Kind: protocol.DCHashes, File: fid, Piece: piece, Hashes: h})); err != nil {
			return err
		}
	}
	if err := p.send(ctx, protocol.AppendDC(nil, &protocol.DCMessage{Kind: protocol.DCHave, File: fid, Flags: protocol.HaveFull | protocol.HaveComplete})); err != nil {
		return err
	}
	prog := func(n int64) {
		c.progress(Progress{File: man.File, Name: man.Name, Peer: p.member, Sending: true, Bytes: n, Total: man.Size, Path: path})
	}
	return awaitVerdict(ctx, p, events, man, prog)
}

// receiverEvents are a receiver's messages to a sending session: progress
// (dropped when the sender is behind) and its one verdict on the file.
type receiverEvents struct {
	progress chan *protocol.DCMessage
	verdict  chan *protocol.DCMessage
}

func (ev receiverEvents) deliver(m *protocol.DCMessage) {
	to := ev.progress
	if m.Kind == protocol.DCDone {
		to = ev.verdict // the first verdict counts; a repeat is dropped
	}
	select {
	case to <- m:
	default:
	}
}

// listenReceiver registers the origin's wait for a receiver's progress and
// verdict on file fid over session p.
func (c *Client) listenReceiver(p *peerConn, fid uuid.UUID) receiverEvents {
	ev := receiverEvents{progress: make(chan *protocol.DCMessage, 64), verdict: make(chan *protocol.DCMessage, 1)}
	c.links.mu.Lock()
	c.links.verdicts[verdictKey{p.member, fid}] = ev
	c.links.mu.Unlock()
	return ev
}

func (c *Client) unlistenReceiver(p *peerConn, fid uuid.UUID) {
	c.links.mu.Lock()
	delete(c.links.verdicts, verdictKey{p.member, fid})
	c.links.mu.Unlock()
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
