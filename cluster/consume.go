package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The stream's events reach a node through an ephemeral consumer of its
// own (memory, one replica, no acks), which lives on one NATS server. When
// that server dies, or anything else breaks the consumer (a missed
// heartbeat, a message lost on the way), the reader makes a new one that
// starts at the next stream sequence it has not delivered, trying every
// resetRetry with a short timeout. (jetstream's OrderedConsumer does the
// same but backs off up to 10 s between attempts of 10 s each: after a
// NATS server was SIGKILLed a node went 30 s without events.)
const (
	resetRetry    = 250 * time.Millisecond
	resetAttempt  = 2 * time.Second
	pullHeartbeat = time.Second     // a consumer silent for two of these is lost
	pullExpiry    = 5 * time.Second // one pull request
	consumerIdle  = 30 * time.Second
)

// streamReader delivers the stream's events to its node in order, once
// each, across consumers.
type streamReader struct {
	n    *Node
	lost chan struct{} // 1-slot: the current consumer is to be replaced

	deliverMu sync.Mutex // one event at a time, across consumers
	mu        sync.Mutex
	gen       uint64 // the current consumer's number
	next      uint64 // the stream sequence to deliver next; 0: no consumer made yet
	cseq      uint64 // the current consumer's last sequence
	cc        jetstream.ConsumeContext

	cancel context.CancelFunc
	done   chan struct{} // closed when loop has returned
}

// startReader makes the first consumer (events from now on) and starts the
// goroutine that replaces it when lost; stop ends it.
func (n *Node) startReader(ctx context.Context) (*streamReader, error) {
	r := &streamReader{n: n, lost: make(chan struct{}, 1), done: make(chan struct{})}
	err := retrySetup(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, resetAttempt)
		defer cancel()
		return r.open(actx)
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: consumer: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.loop(lctx)
	return r, nil
}

// open makes a consumer starting at r.next (the first one: at new events)
// and consumes it.
func (r *streamReader) open(ctx context.Context) error {
	r.mu.Lock()
	cfg := jetstream.ConsumerConfig{FilterSubjects: []string{subjectEvents}, DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1, InactiveThreshold: consumerIdle}
	if r.next != 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.next
	}
	r.mu.Unlock()
	cons, err := r.n.js.CreateConsumer(ctx, streamName, cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == 0 {
		// New events: those after the stream's last at the consumer's
		// making. A consumer lost before it delivered one must not skip
		// what came meanwhile.
		r.next = cons.CachedInfo().Delivered.Stream + 1
	}
	r.gen++
	gen := r.gen
	r.cseq = 0
	r.cc, err = cons.Consume(func(m jetstream.Msg) { r.handle(gen, m) },
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.n.log.Debug("cluster: stream consumer", "err", err)
			r.reset(gen)
		}))
	return err
}

// handle delivers one message of consumer gen, unless it was delivered
// already; a message missing before it loses the consumer.
func (r *streamReader) handle(gen uint64, m jetstream.Msg) {
	r.deliverMu.Lock()
	defer r.deliverMu.Unlock()
	md, err := m.Metadata()
	r.mu.Lock()
	switch {
	case gen != r.gen || err != nil:
		r.mu.Unlock()
		return
	case md.Sequence.Consumer != r.cseq+1:
		r.mu.Unlock()
		r.n.log.Warn("cluster: stream messages lost on the way; starting over from the last delivered", "next", r.next)
		r.reset(gen)
		return
	}
	r.cseq = md.Sequence.Consumer
	dup := md.Sequence.Stream < r.next
	if !dup {
		r.next = md.Sequence.Stream + 1
	}
	r.mu.Unlock()
	if !dup {
		r.n.deliver(m.Data())
	}
}

// reset asks loop to replace consumer gen (once: later calls for the same
// consumer are dropped).
func (r *streamReader) reset(gen uint64) {
	r.mu.Lock()
	current := gen == r.gen
	r.mu.Unlock()
	if !current {
		return
	}
	select {
	case r.lost <- struct{}{}:
	default:
	}
}

// loop replaces the consumer each time it is lost, until ctx ends.
func (r *streamReader) loop(ctx context.Context) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.lost:
		}
		r.retire()
		for {
			actx, cancel := context.WithTimeout(ctx, resetAttempt)
			err := r.open(actx)
			cancel()
			if err == nil {
				r.n.log.Info("cluster: stream consumer replaced", "next", r.nextSeq())
				break
			}
			r.n.log.Debug("cluster: stream consumer not made yet", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(resetRetry):
			}
		}
	}
}

func (r *streamReader) nextSeq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// retire stops the current consumer. It is not deleted: its server may be
// gone, and a delete that waits for an answer would hold up the new one;
// the server drops it after consumerIdle without pull requests.
func (r *streamReader) retire() {
	r.mu.Lock()
	r.gen++ // its messages and errors still on the way are ignored
	cc := r.cc
	r.cc = nil
	r.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}

// stop ends loop and the current consumer.
func (r *streamReader) stop() {
	r.cancel()
	<-r.done
	r.mu.Lock()
	cc := r.cc
	r.gen++
	r.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}

// readerContext is a streamReader as the jetstream.ConsumeContext that
// Node.Close stops.
type readerContext struct {
	r    *streamReader
	once sync.Once
}

func (c *readerContext) Stop()                   { c.once.Do(c.r.stop) }
func (c *readerContext) Drain()                  { c.Stop() }
func (c *readerContext) Closed() <-chan struct{} { return c.r.done }
