package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	ev "cloakroom/internal/cluster"
)

// subscribe starts taking the other nodes' events (Connect calls it, so
// that nothing published after Connect returned is missed): the stream
// from now on, in order; signals for this node; presence; snapshot
// requests; heartbeats. They wait for Run's handler.
func (n *Node) subscribe(ctx context.Context) error {
	r, err := n.startReader(ctx)
	if err != nil {
		return err
	}
	n.cc = &readerContext{r: r}
	for subj, f := range map[string]nats.MsgHandler{
		subjectSignal + n.id: func(m *nats.Msg) { n.deliver(m.Data) },
		subjectSnapshot:      n.answerSnapshot,
		subjectAnnounce:      func(m *nats.Msg) { n.deliver(m.Data) },
		subjectEarly:         func(m *nats.Msg) { n.deliverEarly(m.Data) },
		subjectHeartbeat:     func(m *nats.Msg) { n.peer.heard(string(m.Data), n.id, time.Now()) },
	} {
		s, err := n.nc.Subscribe(subj, f)
		if err != nil {
			return fmt.Errorf("cluster: subscribe %s: %w", subj, err)
		}
		n.subs = append(n.subs, s)
	}
	if err := n.nc.FlushTimeout(flushWait); err != nil {
		return fmt.Errorf("cluster: flush: %w", err)
	}
	return nil
}

// Run hands the other nodes' events to h and sends this node's heartbeat
// until ctx ends.
func (n *Node) Run(ctx context.Context, h Handler) error {
	n.h.Store(&handlerBox{h: h})
	n.readyOnce.Do(func() { close(n.ready) })
	n.heartbeats(ctx, h)
	return nil
}

// handlerWait returns Run's handler, waiting for Run (nil once the node
// is closed).
func (n *Node) handlerWait() Handler {
	select {
	case <-n.ready:
		return n.handler()
	case <-n.closed:
		return nil
	}
}

// deliver decodes an event and applies it; a malformed one is dropped.
func (n *Node) deliver(b []byte) { n.apply(b, false) }

// deliverEarly applies an item sent ahead of the stream, marked Early
// (anything else on that subject is dropped).
func (n *Node) deliverEarly(b []byte) { n.apply(b, true) }

func (n *Node) apply(b []byte, early bool) {
	h := n.handlerWait()
	if h == nil {
		return
	}
	e, err := ev.Decode(b)
	if err != nil {
		n.log.Warn("cluster: malformed event dropped", "err", err)
		return
	}
	if early && (e.Type != ev.TypeItem || e.Node == n.id) {
		return
	}
	e.Early = early
	h.Apply(e)
}

// heartbeats sends this node's heartbeat and reports nodes not heard for
// GoneAfter, until ctx ends.
func (n *Node) heartbeats(ctx context.Context, h Handler) {
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		_ = n.nc.Publish(subjectHeartbeat, []byte(n.id))
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, node := range n.peer.gone(now, n.cfg.GoneAfter) {
				n.log.Info("cluster: node gone", "node", node)
				h.NodeGone(node)
			}
		}
	}
}

// answerSnapshot answers another node's snapshot request with what h
// knows of the room (an event with no members when nothing).
func (n *Node) answerSnapshot(m *nats.Msg) {
	req, err := ev.Decode(m.Data)
	if err != nil || req.Type != ev.TypeSnapshot || req.Node == n.id || m.Reply == "" {
		return
	}
	h := n.handlerWait()
	if h == nil {
		return
	}
	snap := h.SnapshotOf(req.Room)
	if snap == nil {
		snap = &ev.Event{Type: ev.TypeSnapshot, Node: n.id, Room: req.Room}
	}
	b, err := ev.Encode(snap)
	if err != nil {
		n.log.Warn("cluster: snapshot too large", "err", err)
		return
	}
	_ = m.Respond(b)
}

// Snapshot asks the other live nodes for the members of room and returns
// the first answer that has some (nil when none does).
func (n *Node) Snapshot(ctx context.Context, room string) (*ev.Event, error) {
	want := n.peer.live()
	if want == 0 {
		return nil, nil
	}
	b, err := ev.Encode(&ev.Event{Type: ev.TypeSnapshot, Node: n.id, Room: room})
	if err != nil {
		return nil, err
	}
	inbox := nats.NewInbox()
	// A channel of the answers expected (SubscribeSync would allocate one
	// of 64K entries on every join).
	answers := make(chan *nats.Msg, want)
	sub, err := n.nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(subjectSnapshot, inbox, b); err != nil {
		return nil, fmt.Errorf("cluster: snapshot: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotWait)
	defer cancel()
	for range want {
		var m *nats.Msg
		select {
		case m = <-answers:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, nil
			}
			return nil, fmt.Errorf("cluster: snapshot: %w", ctx.Err())
		}
		e, err := ev.Decode(m.Data)
		if err == nil && e.Type == ev.TypeSnapshot && e.Room == room && len(e.Roster) > 0 {
			return e, nil
		}
	}
	return nil, nil
}

func (p *peers) heard(node, self string, now time.Time) {
	if node == self || !nodeRe.MatchString(node) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = make(map[string]time.Time)
	}
	if _, known := p.seen[node]; known || len(p.seen) < maxPeers {
		p.seen[node] = now
	}
}

// flushWait bounds the wait for NATS to confirm the subscriptions.
const flushWait = 5 * time.Second

// maxPeers bounds the nodes tracked (heartbeats come from anyone on NATS).
const maxPeers = 1024

// gone forgets and returns the nodes not heard for d.
func (p *peers) gone(now time.Time, d time.Duration) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for node, t := range p.seen {
		if now.Sub(t) > d {
			delete(p.seen, node)
			out = append(out, node)
		}
	}
	return out
}

func (p *peers) live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}
