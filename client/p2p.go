package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// p2pOutcome is a recipient's first news from its peer-to-peer rungs: a
// session connected (p set), or every rung failed and the relay store must
// take over (fallback).
type p2pOutcome struct {
	member   string
	p        *peerConn
	fallback bool
}

// sendP2P climbs the ladder for one recipient (connect) and streams the
// file on the first rung that connects. It reports on outcome, exactly
// once, as soon as it knows. Recipients are independent: each runs in its
// own goroutine, so a slow or failing one does not hold up the others.
// Before serving, upgrade (if set) hands the recipient over from the relay
// store: it returns the chunks the relay carries to it, which are not
// served again here.
func (c *Client) sendP2P(ctx context.Context, member string, e *entry, outcome chan<- p2pOutcome, upgrade func(string) transfer.Bits, settle func(string)) p2pResult {
	p, errs := c.connect(ctx, member)
	if settle != nil && (p == nil || upgrade == nil) {
		settle(member)
	}
	if p == nil {
		if c.opts.Transport == protocol.TransportAuto && ctx.Err() == nil {
			outcome <- p2pOutcome{member: member, fallback: true}
			return p2pResult{member: member, fallback: true}
		}
		outcome <- p2pOutcome{member: member}
		return p2pResult{member: member, err: fmt.Errorf("%s: %w", short8(member), errors.Join(errs...))}
	}
	path := p.path()
	if upgrade != nil {
		if relayed := upgrade(member); relayed != nil {
			e.relaying(member, relayed)
			c.log.Info("a peer-to-peer session took over from the relay", "member", short8(member), "path", path, "relayed_chunks", relayed.Count())
			if relayed.Count() >= int(e.man.Chunks) {
				// The relay upload goes on for others and brings member
				// every chunk; the session carries only the verdict.
				path = protocol.PathRelay
			}
		}
		settle(member)
	}
	outcome <- p2pOutcome{member: member, p: p}
	// The link stays up after the file: the member may fetch other
	// files over it, serve them, or get the next one.
	if err := c.serveFile(ctx, p, path, e); err != nil {
		// The receiver's own verdict (a failed check) is final; a broken
		// session is not.
		mid := !errors.Is(err, ErrFileLost) && ctx.Err() == nil
		return p2pResult{member: member, midFile: mid, err: fmt.Errorf("%s via %s: %w", short8(member), path, err)}
	}
	return p2pResult{member: member, path: path}
}

// connect climbs the peer-to-peer ladder to member and returns the first
// session that is ready, or nil and why each rung failed. A rung starts
// when the one before it failed or has not connected within RungStagger
// (then both run, like Happy Eyeballs): on a network that drops UDP the
// TURN rung (over TCP or TLS) is up long before the direct attempt times
// out. The sessions that lose are closed and their peer told.
func (c *Client) connect(ctx context.Context, member string) (*peerConn, []error) {
	modes := c.opts.Transport.Ladder()
	results := make(chan rungAttempt, len(modes))
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	next, running := 0, 0
	var stagger <-chan time.Time
	start := func() {
		mode := modes[next]
		next, running = next+1, running+1
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- c.tryRung(actx, member, mode)
		}()
		stagger = nil
		if next < len(modes) && c.opts.RungStagger > 0 {
			t := time.NewTimer(c.opts.RungStagger)
			stagger = t.C
			context.AfterFunc(actx, func() { t.Stop() })
		}
	}
	var errs []error
	var won *peerConn
	if len(modes) > 0 {
		start()
	}
	for running > 0 {
		select {
		case <-stagger:
			if won == nil {
				start()
			}
		case a := <-results:
			running--
			if a.err == nil && won == nil {
				won = a.p
				cancel() // the others lose
			} else if c.rungLost(ctx, member, a, won != nil) {
				errs = append(errs, a.err)
				if ctx.Err() == nil && won == nil && next < len(modes) {
					start()
				}
			}
		}
	}
	return won, errs
}

// rungAttempt is how one rung of connect ended.
type rungAttempt struct {
	mode  protocol.Mode
	p     *peerConn
	fresh bool // offered now (not a link that was up already)
	err   error
}

// tryRung offers a session with member on mode (or takes the link on that
// rung that is up) and waits until it is ready, fails, or ctx ends.
func (c *Client) tryRung(ctx context.Context, member string, mode protocol.Mode) rungAttempt {
	p, fresh, err := c.linkFor(member, mode)
	if err == nil && fresh { // a link that was up is ready (and must not be closed if ctx ends)
		err = p.waitReady(ctx, c.opts.ICETimeout)
	}
	if err != nil && p != nil { // tell the peer to drop its half of the attempt
		_ = c.room.sendSignal(member, &protocol.Signal{Kind: protocol.SignalBye, Session: p.session})
	}
	return rungAttempt{mode: mode, p: p, fresh: fresh, err: err}
}

// rungLost ends a rung that did not win, and reports whether it failed
// (rather than lost to one that connected first, won).
func (c *Client) rungLost(ctx context.Context, member string, a rungAttempt, won bool) bool {
	switch {
	case a.err == nil: // connected too late: not needed, unless it was a link already
		if a.fresh {
			a.p.close()
			_ = c.room.sendSignal(member, &protocol.Signal{Kind: protocol.SignalBye, Session: a.p.session})
		}
		return false
	case won || errors.Is(a.err, context.Canceled) && ctx.Err() == nil:
		c.log.Info("peer-to-peer rung abandoned: another connected first", "member", short8(member), "mode", a.mode)
		return false
	}
	c.log.Info("peer-to-peer rung failed", "member", short8(member), "mode", a.mode, "err", a.err)
	return true
}

// linkFor returns a ready link with member on rung mode (the newest), or
// offers a new session.
func (c *Client) linkFor(member string, mode protocol.Mode) (p *peerConn, fresh bool, err error) {
	for _, p := range c.links.with(member) {
		if p.mode == mode && p.Err() == nil {
			return p, false, nil
		}
	}
	p, err = c.peers.offer(member, mode)
	return p, true, err
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
