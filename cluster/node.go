// Package cluster joins cloakroom server nodes through NATS
// (docs/SCALING.md): it carries the signaling server's cluster events
// (internal/cluster) between nodes and implements signaling.Bus.
//
//   - cloakroom.ev: presence, relay items and acks, through the JetStream
//     stream CLOAKROOM (memory storage, replicated, max age the relay TTL),
//     consumed by every node in order from the moment it started;
//   - cloakroom.sig.<node>: a signal for a member online on that node;
//   - cloakroom.pres: presence again, at once and best effort (the stream
//     may be electing a leader after a NATS server was lost);
//   - cloakroom.early: a small relay item (chat) at once, best effort,
//     ahead of its copy in the stream (the receiver applies the first);
//   - cloakroom.hb: each node's heartbeat; a node not heard for GoneAfter
//     is gone and its members offline;
//   - cloakroom.snap: a node about to admit a member to a room it does not
//     know asks the others for its members;
//   - the KV bucket cloakroom-rooms: room id -> verifier hash.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ev "cloakroom/internal/cluster"
)

// Subjects, stream and bucket names.
const (
	subjectEvents    = "cloakroom.ev"
	subjectSignal    = "cloakroom.sig."
	subjectHeartbeat = "cloakroom.hb"
	subjectSnapshot  = "cloakroom.snap"
	subjectAnnounce  = "cloakroom.pres"
	subjectEarly     = "cloakroom.early"
	streamName       = "CLOAKROOM"
	bucketRooms      = "cloakroom-rooms"
)

// Defaults.
const (
	DefaultReplicas  = 3
	DefaultHeartbeat = time.Second
	DefaultGoneAfter = 5 * time.Second
	snapshotWait     = 500 * time.Millisecond
	registerRetry    = 20 * time.Millisecond
	setupWait        = 30 * time.Second
	minRegistryAge   = time.Hour
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("cluster: invalid config")

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	nodeRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
)

// Config sets up a Node. Zero fields get defaults.
type Config struct {
	URLs      []string      // NATS servers, nats://HOST:PORT
	Name      string        // this node's name; default a random id. Each process adds a random suffix.
	Replicas  int           // JetStream replicas of the stream and bucket; default min(3, servers in the cluster)
	TTL       time.Duration // the relay TTL: the stream's max age
	MaxBytes  int64         // the relay's cap: the stream's max bytes
	Heartbeat time.Duration // default 1 s
	GoneAfter time.Duration // default 5 s
	Logger    *slog.Logger
}

// Handler is what the node hands the events of other nodes to: the
// signaling server.
type Handler interface {
	Apply(e *ev.Event)
	SnapshotOf(room string) *ev.Event
	NodeGone(node string)
	Reconnected()
}

// Node is this process's membership in the cluster.
type Node struct {
	cfg Config
	id  string
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	seq atomic.Uint64
	h   atomic.Pointer[handlerBox]

	renames renames // message ids the stream holds stuck "in process"
	peer    peers

	cc        jetstream.ConsumeContext
	subs      []*nats.Subscription
	ready     chan struct{} // closed by Run: the handler is set
	readyOnce sync.Once
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
}

type handlerBox struct{ h Handler }

func (c *Config) fill() error {
	if len(c.URLs) == 0 {
		return fmt.Errorf("%w: no NATS URL", ErrConfig)
	}
	for _, u := range c.URLs {
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			return fmt.Errorf("%w: %q is not nats://HOST:PORT", ErrConfig, u)
		}
	}
	if c.Name == "" {
		c.Name = "node"
	}
	if !nameRe.MatchString(c.Name) {
		return fmt.Errorf("%w: node name %q: use letters, digits, - and _", ErrConfig, c.Name)
	}
	if c.TTL <= 0 || c.MaxBytes <= 0 || c.Replicas < 0 || c.Heartbeat < 0 || c.GoneAfter < 0 {
		return fmt.Errorf("%w: TTL and MaxBytes must be set, nothing negative", ErrConfig)
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.GoneAfter == 0 {
		c.GoneAfter = DefaultGoneAfter
	}
	if c.GoneAfter <= c.Heartbeat {
		return fmt.Errorf("%w: GoneAfter must be longer than Heartbeat", ErrConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Validate checks c without connecting.
func (c Config) Validate() error { return c.fill() }

// Connect connects to NATS and makes (or finds) the stream and the bucket.
// It already takes the other nodes' events, which wait for Run's handler.
func Connect(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	n := &Node{cfg: cfg, id: cfg.Name + "-" + hex.EncodeToString(suffix[:]), log: cfg.Logger,
		ready: make(chan struct{}), closed: make(chan struct{})}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), nats.Name("cloakroom "+n.id),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(false),
		nats.ReconnectHandler(func(*nats.Conn) { n.reconnected() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: Close
				n.log.Warn("cluster: NATS disconnected", "err", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	n.nc = nc
	if err := n.setup(ctx); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.subscribe(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// setup makes the stream and the bucket with the configured replicas
// (at most the servers in the NATS cluster).
func (n *Node) setup(ctx context.Context) error {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	n.js = js
	replicas := n.cfg.Replicas
	if replicas == 0 {
		replicas = min(DefaultReplicas, max(1, len(n.nc.Servers())))
	}
	err = retrySetup(ctx, func() error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: streamName, Subjects: []string{subjectEvents}, Storage: jetstream.MemoryStorage,
			Replicas: replicas, MaxAge: n.cfg.TTL, MaxBytes: n.cfg.MaxBytes, Discard: jetstream.DiscardOld,
			Duplicates: time.Minute,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: stream %s (%d replicas): %w", streamName, replicas, err)
	}
	err = retrySetup(ctx, func() error {
		n.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucketRooms, Storage: jetstream.MemoryStorage, Replicas: replicas,
			TTL: max(6*n.cfg.TTL, minRegistryAge),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: bucket %s (%d replicas): %w", bucketRooms, replicas, err)
	}
	return nil
}

// retrySetup retries f for up to setupWait: a NATS cluster that has just
// started (or lost a server) refuses placements until its peers are known.
func retrySetup(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, setupWait)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Node is this node's id in the cluster (name and a random suffix).
func (n *Node) Node() string { return n.id }

// Publish sends a batch of events to every node through the stream, all
// at once, and waits for the stream's acknowledgements (then they are
// replicated). Each carries a message id (node and sequence number), so a
// batch published again after an error is stored once.
func (n *Node) Publish(ctx context.Context, batch []*ev.Event) error {
	futs := make([]jetstream.PubAckFuture, 0, len(batch))
	ids := make([]string, 0, len(batch))
	for _, e := range batch {
		b, err := ev.Encode(e)
		if err != nil {
			n.log.Error("cluster: event not sent", "err", err)
			continue
		}
		id := fmt.Sprintf("%s-%d", n.id, e.Seq)
		if e.Seq == 0 {
			id = fmt.Sprintf("%s-x%d", n.id, n.seq.Add(1))
		}
		f, err := n.js.PublishAsync(subjectEvents, b, jetstream.WithMsgID(n.renames.current(id)))
		if err != nil {
			return fmt.Errorf("cluster: publish %s: %w", e.Type, err)
		}
		futs, ids = append(futs, f), append(ids, id)
	}
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if inProcess(err) {
				// The batch is retried (signaling's publish): this event
				// then goes under a new id.
				n.log.Debug("cluster: message id stuck in process; the event goes again under a new id", "id", ids[i])
				n.renames.rename(ids[i], time.Now())
			}
			return fmt.Errorf("cluster: publish: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("cluster: publish: %w", ctx.Err())
		}
	}
	return nil
}

// Send sends e to one node, best effort.
func (n *Node) Send(node string, e *ev.Event) error {
	if !nodeRe.MatchString(node) {
		return fmt.Errorf("%w: node %q", ErrConfig, node)
	}
	return n.publishCore(subjectSignal+node, e)
}

// Announce sends e to every node, best effort (core NATS, no stream).
func (n *Node) Announce(e *ev.Event) error { return n.publishCore(subjectAnnounce, e) }

// Early sends a small relay item to every node at once, best effort (core
// NATS): the stream carries it too, and the receiver applies the copy that
// comes first (the bus marks this one Early).
func (n *Node) Early(e *ev.Event) error { return n.publishCore(subjectEarly, e) }

// publishCore sends e on subject over core NATS, best effort.
func (n *Node) publishCore(subject string, e *ev.Event) error {
	b, err := ev.Encode(e)
	if err != nil {
		return err
	}
	if err := n.nc.Publish(subject, b); err != nil {
		return fmt.Errorf("cluster: publish on %s: %w", subject, err)
	}
	return nil
}

// Register returns the verifier hash room is registered with, registering
// hash when the room has none.
func (n *Node) Register(ctx context.Context, room, hash string) (string, error) {
	key := hex.EncodeToString([]byte(room))
	for {
		_, err := n.kv.Create(ctx, key, []byte(hash))
		if err == nil {
			return hash, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return "", fmt.Errorf("cluster: register room: %w", err)
		}
		e, err := n.kv.Get(ctx, key)
		if err == nil {
			return string(e.Value()), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return "", fmt.Errorf("cluster: registered room: %w", err)
		}
		// Created on another server and not yet readable on this one (KV
		// reads may go to any replica), or deleted since: try again.
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster: registered room: %w", ctx.Err())
		case <-time.After(registerRetry):
		}
	}
}

// Close leaves NATS (the server has published its last events); it is
// idempotent.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		close(n.closed)
		if n.cc != nil {
			n.cc.Stop()
		}
		for _, s := range n.subs {
			_ = s.Unsubscribe()
		}
		n.nc.Close()
	})
}

func (n *Node) handler() Handler {
	if b := n.h.Load(); b != nil {
		return b.h
	}
	return nil
}

func (n *Node) reconnected() {
	n.log.Info("cluster: NATS reconnected", "server", n.nc.ConnectedUrlRedacted())
	if h := n.handler(); h != nil {
		h.Reconnected()
	}
}

// peers tracks when each other node was last heard.
type peers struct {
	mu   sync.Mutex
	seen map[string]time.Time
}
