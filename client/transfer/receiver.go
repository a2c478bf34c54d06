package transfer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// Host is what a Receiver needs from the client around it.
type Host interface {
	// Progress reports a reception's advance.
	Progress(Progress)
	// Deliver hands over a received (or failed) file.
	Deliver(File)
	// Ack acks relay items whose chunks are written and their bitmaps saved.
	Ack(items []uint64) error
	// TellHave sends a file's sender a sealed have signal.
	TellHave(to string, body *protocol.Signal) error
	// Online reports whether member is in the room and connected now.
	Online(member string) bool
	// Stored says chunk index of file is written (it may be served now).
	Stored(file string, index uint32)
}

// Config configures a Receiver.
type Config struct {
	Dir    string   // where received files go
	RoomID [16]byte // binds chunk ciphers to the room
	Log    *slog.Logger
	Host   Host
	// Sink opens where a file's plaintext goes; nil: a partial file in Dir,
	// resumed if one for the same content is there.
	Sink func(man *crypto.Manifest) (ChunkSink, error)
}

// Receiver receives files. Chunk opens each sealed chunk in its caller's
// goroutine (so decrypting overlaps the disk) and queues it; Run, the one
// goroutine that touches the sinks, writes chunks, checks finished files and
// acks relay items.
type Receiver struct {
	cfg  Config
	log  *slog.Logger
	jobs chan chunkJob // Chunk, Start -> Run

	mu    sync.Mutex
	recvs map[string]*recvState // by file id
}

// NewReceiver makes a Receiver; its Run loop must be started.
func NewReceiver(cfg Config) *Receiver {
	if cfg.Sink == nil {
		cfg.Sink = func(man *crypto.Manifest) (ChunkSink, error) {
			s, err := openDiskSink(cfg.Dir, man)
			if err != nil {
				return nil, err // not a typed nil
			}
			return s, nil
		}
	}
	return &Receiver{cfg: cfg, log: cfg.Log, jobs: make(chan chunkJob, 64), recvs: map[string]*recvState{}}
}

// recvState is one incoming file.
type recvState struct {
	man      *crypto.Manifest
	from     string
	cipher   *crypto.ChunkCipher
	sink     ChunkSink   // Run only once handed over; nil until an adoption ran
	failed   atomic.Bool // set by Run, read by Chunk
	done     bool        // Run only
	doneFlag atomic.Bool // done, for other goroutines
	src      ChunkSource // where chunks come from now; guarded by Receiver.mu
	resumed  bool        // started from chunks already held: the sender was told (Run only)
	held     int64       // bytes held when the reception began (Run only)
	retired  atomic.Bool // handed over to a newer announcement of the same content
	adopt    *recvState  // set at creation: take over this one's sink (Run)
}

// chunkJob is a chunk on its way from Chunk to Run: decrypted already
// (plain), or an error to report, or nothing but an ack.
type chunkJob struct {
	rs    *recvState
	start bool // not a chunk: the reception begins (resume bookkeeping)
	index uint32
	item  uint64  // relay item to ack; 0 for peer-to-peer chunks
	plain *[]byte // pooled buffer holding the plaintext
	err   error
}

var plainPool = sync.Pool{New: func() any {
	b := make([]byte, 0, protocol.ChunkSize)
	return &b
}}

// Start prepares the reception of a file announced by from through src. A
// file already being received keeps its state and switches to src; a new
// announcement of content partly held (an earlier round, an earlier run)
// continues from what is held.
func (r *Receiver) Start(ctx context.Context, man *crypto.Manifest, from string, src ChunkSource) error {
	r.mu.Lock()
	rs := r.recvs[man.File]
	var old *recvState
	if rs == nil {
		if old = r.sameContentLocked(man); old != nil {
			if old.from != from && r.cfg.Host.Online(old.from) {
				r.mu.Unlock()
				return fmt.Errorf("%q: the same content is being received from %.8s, who is online: %w", man.Name, old.from, ErrSameContent)
			}
			// Run retires old when it hands its sink over (begin), after
			// the chunks of old already queued: they are written, not lost.
			delete(r.recvs, old.man.File)
		}
	}
	r.mu.Unlock()
	if rs != nil {
		if rs.from != from {
			return fmt.Errorf("file id %s reused by another member: %w", man.File, ErrIntegrity)
		}
		r.switchSource(rs, src)
		return nil
	}
	rs, err := r.newRecv(man, from, old)
	if err != nil {
		return err
	}
	rs.src = src
	r.mu.Lock()
	r.recvs[man.File] = rs
	r.mu.Unlock()
	// Run takes over the old sink (in order with the chunks already queued)
	// and tells the sender what it can skip.
	select {
	case r.jobs <- chunkJob{rs: rs, start: true}:
	case <-ctx.Done():
	}
	return nil
}

// sameContentLocked finds an unfinished reception of the content man
// announces: a previous round of the same file, which the new announcement
// adopts (partial file, bitmap). Only its own sender may take a reception
// over while that sender is online — anyone who saw a manifest could
// announce the same hash, size and chunk size — so another member's
// announcement is refused (ErrSameContent); a restarted sender (a new
// member id) takes over once the old one is offline or gone.
func (r *Receiver) sameContentLocked(man *crypto.Manifest) *recvState {
	for _, rs := range r.recvs {
		if rs.man.SHA256 == man.SHA256 && rs.man.Size == man.Size && rs.man.ChunkSize == man.ChunkSize &&
			!rs.doneFlag.Load() && !rs.failed.Load() && !rs.retired.Load() {
			return rs
		}
	}
	return nil
}

// switchSource moves a reception to a new source; a file already handled
// is confirmed to the new source at once.
func (r *Receiver) switchSource(rs *recvState, src ChunkSource) {
	r.mu.Lock()
	done, failed := rs.doneFlag.Load(), rs.failed.Load()
	rs.src = src
	r.mu.Unlock()
	if done || failed {
		src.Report(&protocol.DCMessage{Kind: protocol.DCDone, File: uuid.MustParse(rs.man.File), Failed: failed, Reason: "already handled"})
	}
}

// newRecv makes a reception: one that adopts old's sink in Run, or one with
// a sink of its own.
func (r *Receiver) newRecv(man *crypto.Manifest, from string, old *recvState) (*recvState, error) {
	ciph, err := cipherFor(r.cfg.RoomID, man, from)
	if err != nil {
		return nil, err
	}
	rs := &recvState{man: man, from: from, cipher: ciph, adopt: old}
	if old != nil {
		return rs, nil
	}
	if err := checkManifestShape(man); err != nil {
		return nil, err
	}
	if rs.sink, err = r.cfg.Sink(man); err != nil {
		return nil, err
	}
	return rs, nil
}

// source returns where rs's chunks come from now.
func (r *Receiver) source(rs *recvState) ChunkSource {
	r.mu.Lock()
	defer r.mu.Unlock()
	return rs.src
}

// Chunk opens one sealed chunk from src (item is the relay item to ack, 0
// for peer-to-peer chunks) and queues it for Run; it blocks while Run is
// behind (back-pressure), until src is gone or ctx ends.
func (r *Receiver) Chunk(ctx context.Context, d *protocol.ChunkDown, src ChunkSource) error {
	return r.ChunkChecked(ctx, d, src, nil)
}

// ChunkChecked is Chunk for a chunk from a holder other than the origin:
// check (a HashList's Check) must accept its unpadded plaintext, or the
// chunk is dropped and the error returned (the reception goes on: the
// caller drops the holder and asks elsewhere).
func (r *Receiver) ChunkChecked(ctx context.Context, d *protocol.ChunkDown, src ChunkSource, check func(uint32, []byte) error) error {
	fileID := uuid.UUID(d.File).String()
	sender := uuid.UUID(d.Sender).String()
	r.mu.Lock()
	rs := r.recvs[fileID]
	r.mu.Unlock()
	job := chunkJob{rs: rs, index: d.Index, item: d.Item}
	switch {
	case rs == nil || rs.failed.Load():
	case rs.from != sender || d.Count != rs.man.Chunks:
		job.err = fmt.Errorf("chunk %d of %q: routing does not match the manifest: %w", d.Index, rs.man.Name, ErrIntegrity)
	default:
		bp := plainPool.Get().(*[]byte)
		plain, err := rs.cipher.Open((*bp)[:0], d.Index, d.Final, d.Sealed)
		if err != nil {
			plainPool.Put(bp)
			job.err = fmt.Errorf("chunk %d of %q: %v: %w", d.Index, rs.man.Name, err, ErrIntegrity)
			break
		}
		*bp = plain
		if check != nil {
			if err := checkPlain(rs, d.Index, plain, check); err != nil {
				plainPool.Put(bp)
				return err
			}
		}
		job.plain = bp
	}
	select {
	case r.jobs <- job:
		return nil
	case <-src.Gone():
		return fmt.Errorf("chunk %d: %w", d.Index, ErrSourceGone)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkPlain runs check on chunk index's content (padding dropped; bad
// padding is refused the same way).
func checkPlain(rs *recvState, index uint32, plain []byte, check func(uint32, []byte) error) error {
	want := int(chunkLen(rs.man, index))
	if len(plain) != rs.man.ChunkSize || !allZero(plain[want:]) {
		return fmt.Errorf("chunk %d of %q: bad size or padding: %w", index, rs.man.Name, ErrBadChunk)
	}
	return check(index, plain[:want])
}

// Active reports whether file is being received now: started, not yet
// finished, failed, or handed over to a newer announcement.
func (r *Receiver) Active(file string) bool {
	r.mu.Lock()
	rs := r.recvs[file]
	r.mu.Unlock()
	return rs != nil && !rs.doneFlag.Load() && !rs.failed.Load() && !rs.retired.Load()
}

// Cancel ends the reception of file when from is its sender (an xfer
// cancel signal): it fails with ErrCancelled, its partial file is dropped,
// and the user hears why. It reports whether a reception was ended.
func (r *Receiver) Cancel(ctx context.Context, file, from string) bool {
	r.mu.Lock()
	rs := r.recvs[file]
	r.mu.Unlock()
	if rs == nil || rs.from != from || rs.doneFlag.Load() || rs.failed.Load() || rs.retired.Load() {
		return false
	}
	select {
	case r.jobs <- chunkJob{rs: rs, err: fmt.Errorf("%q: %w", rs.man.Name, ErrCancelled)}:
		return true
	case <-ctx.Done():
		return false
	}
}

// Relayed reports whether file is being received now from the relay store
// (a peer-to-peer session with its sender may take it over).
func (r *Receiver) Relayed(file string) bool {
	r.mu.Lock()
	rs := r.recvs[file]
	r.mu.Unlock()
	if rs == nil || rs.doneFlag.Load() || rs.failed.Load() || rs.retired.Load() {
		return false
	}
	return r.source(rs).Path() == protocol.PathRelay
}

// Started reports whether a reception of file was ever started.
func (r *Receiver) Started(file string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recvs[file] != nil
}
