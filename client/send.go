package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"cloakroom/client/transfer"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// SendReport says what happened to a file for each recipient.
type SendReport struct {
	File      string
	Name      string
	Size      int64
	Delivered []string                 // members that received and verified it
	Paths     map[string]protocol.Path // member -> the path its copy took
	Failed    map[string]string        // member -> reason
	Duration  time.Duration
	// Relay uploads: chunk bytes uploaded over all rounds, and the rounds
	// (more than one when the connection to the server broke mid-file).
	Uploaded int64
	Rounds   int
	// Served: chunk bytes this member sent on peer-to-peer sessions for the
	// file while the send ran (to recipients, and to members fetching it).
	Served int64
}

// SendFile sends the file at path to every member online when it starts
// (waiting for one to be online if none is) and returns once each recipient
// received it or was reported unreachable. With Transport auto each
// recipient gets the best path that connects — a direct data channel, one
// relayed by TURN, or the server's relay store — independently of the others.
func (c *Client) SendFile(ctx context.Context, path string) (*SendReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("send %s: not a regular file", path)
	}
	man, key, e, err := c.share(f, st, path)
	if err != nil {
		return nil, err
	}
	if err := c.waitForMember(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	servedBefore := e.served.Load()
	o := &outgoing{f: f, rep: &SendReport{File: man.File, Name: man.Name, Size: man.Size, Failed: map[string]string{}, Paths: map[string]protocol.Path{}}}
	var wg sync.WaitGroup
	var relayTo []string
	if c.opts.Transport == protocol.TransportRelay {
		relayTo = c.room.OnlineMembers()
	} else {
		relayTo = c.sendAllP2P(ctx, o, e, &wg)
	}
	var relayErr error
	if len(relayTo) > 0 {
		relayErr = c.sendRelay(ctx, o, man, key, relayTo, false)
	}
	wg.Wait()
	// A data channel that broke mid-file, to a member still online: the
	// relay takes over, announcing the same content again, and the receiver's
	// have signal leaves only the chunks it lacks (docs/DECISIONS.md).
	if back := c.stillOnline(o.broken); len(back) > 0 && relayErr == nil && ctx.Err() == nil {
		m2, k2, err := transfer.Renew(man)
		if err != nil {
			return o.rep, err
		}
		c.log.Info("peer-to-peer session broke mid-file; continuing through the relay", "name", man.Name, "members", len(back))
		relayErr = c.sendRelay(ctx, o, m2, k2, back, true)
	}
	rep := o.rep
	rep.Served = e.served.Load() - servedBefore
	for _, m := range o.broken {
		if !slices.Contains(rep.Delivered, m) && rep.Failed[m] == "" {
			rep.Failed[m] = "the peer-to-peer session broke mid-file and the member went offline"
		}
	}
	rep.Duration = time.Since(start)
	if relayErr != nil {
		return rep, relayErr
	}
	if len(rep.Failed) > 0 {
		return rep, fmt.Errorf("send: %d of %d recipients did not get %q: %w", len(rep.Failed), len(rep.Failed)+len(rep.Delivered), man.Name, ErrFileLost)
	}
	return rep, nil
}

// outgoing is one file being sent: the open file, and the report that the
// paths to each recipient fill in, from several goroutines.
type outgoing struct {
	f      *os.File
	mu     sync.Mutex
	rep    *SendReport // guarded by mu while the paths run
	broken []string    // auto: peer-to-peer sessions that broke mid-file; guarded by mu
	leg    *relayLeg   // auto, relay first: the relay's part, nil otherwise
}

// sendAllP2P starts a peer-to-peer send to every online recipient and
// returns those that need the relay: each whose rungs all failed, and with
// relay first (o.leg) also each not connected within RelayWait — its
// session, once up, takes over from the relay mid-file.
func (c *Client) sendAllP2P(ctx context.Context, o *outgoing, e *entry, wg *sync.WaitGroup) []string {
	recipients := c.room.OnlineMembers()
	outcome := make(chan p2pOutcome, len(recipients)) // one per recipient, read or not
	if c.opts.Transport == protocol.TransportAuto && c.opts.RelayWait >= 0 {
		o.leg = newRelayLeg(e.man.Chunks)
	}
	var takeOver func(string) transfer.Bits
	var settle func(string)
	if o.leg != nil {
		takeOver, settle = o.leg.takeOver, o.leg.settle
	}
	for _, r := range recipients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := c.sendP2P(ctx, r, e, outcome, takeOver, settle)
			o.mu.Lock()
			defer o.mu.Unlock()
			switch {
			case res.fallback:
			case res.err != nil && res.midFile && c.opts.Transport == protocol.TransportAuto && ctx.Err() == nil:
				o.broken = append(o.broken, r)
			case res.err != nil:
				o.rep.Failed[r] = res.err.Error()
			default:
				o.rep.Delivered = append(o.rep.Delivered, r)
				o.rep.Paths[r] = res.path
			}
		}()
	}
	return c.awaitOutcomes(o, e, recipients, outcome)
}

// awaitOutcomes collects the recipients' first news from their rungs and
// returns those the relay must serve: each whose rungs all failed, and
// with relay first each still without a session after RelayWait.
func (c *Client) awaitOutcomes(o *outgoing, e *entry, recipients []string, outcome <-chan p2pOutcome) []string {
	var head <-chan time.Time
	if o.leg != nil {
		t := time.NewTimer(c.opts.RelayWait)
		defer t.Stop()
		head = t.C
	}
	waiting := map[string]bool{}
	for _, r := range recipients {
		waiting[r] = true
	}
	var relayTo []string
	for len(waiting) > 0 {
		select {
		case oc := <-outcome:
			delete(waiting, oc.member)
			if oc.fallback {
				relayTo = append(relayTo, oc.member)
			}
		case <-head:
			for m := range waiting {
				relayTo = append(relayTo, m)
			}
			relayTo = o.leg.begin(relayTo)
			if len(relayTo) > 0 {
				c.log.Info("no peer-to-peer session yet; starting on the relay", "file", e.man.File, "members", len(relayTo))
			}
			return relayTo
		}
	}
	if o.leg != nil {
		relayTo = o.leg.begin(relayTo)
	}
	return relayTo
}

// stillOnline returns the members of ids online now.
func (c *Client) stillOnline(ids []string) []string {
	away := c.room.offline(ids)
	return slices.DeleteFunc(slices.Clone(ids), func(m string) bool { return slices.Contains(away, m) })
}

// waitForMember returns once at least one other member is online.
func (c *Client) waitForMember(ctx context.Context) error {
	err := c.room.await(ctx, time.Time{}, func() bool { return len(c.room.OnlineMembers()) > 0 })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed):
		return fmt.Errorf("send: %w", ErrClosed)
	}
	return fmt.Errorf("send: waiting for another member to join: %w", ErrNoMembers)
}

// share hashes the file, seals its manifest once (the same envelope goes to
// every recipient and into the library, from which any holder forwards it
// as is) and adds it to the library as held here.
func (c *Client) share(f *os.File, st os.FileInfo, path string) (*crypto.Manifest, []byte, *entry, error) {
	man, key, chunkHashes, err := transfer.NewManifest(f, st)
	if err != nil {
		return nil, nil, nil, err
	}
	stamped, env, err := c.sealStamped(man)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("send: seal manifest: %w", err)
	}
	e, err := c.addOwn(stamped, env, path, chunkHashes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("send: %w", err)
	}
	return man, key, e, nil
}
