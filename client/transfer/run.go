package transfer

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"cloakroom/internal/protocol"
)

// Run writes queued chunks to their sinks, checks completed files, and acks
// what it wrote, batching acks while more chunks are waiting. It returns
// when ctx ends, closing unfinished sinks (they stay on disk for a resume).
func (r *Receiver) Run(ctx context.Context) {
	var acks []uint64
	dirty := map[*recvState]bool{}
	unflushed := 0
	for {
		select {
		case job := <-r.jobs:
			var complete *recvState
			if job.start {
				complete = r.begin(job.rs)
			} else {
				complete = r.store(job)
			}
			if job.rs != nil && job.rs.sink != nil {
				dirty[job.rs] = true
				unflushed++
			}
			if job.item != 0 {
				acks = append(acks, job.item)
			}
			// Acks go out before a completed file is handed to the user, who
			// may close the client at once: the sender must hear of it.
			ackNow := len(acks) >= 16 || (len(acks) > 0 && (len(r.jobs) == 0 || complete != nil))
			// The bitmaps reach the disk before the acks: an acked chunk is
			// never delivered again, so a restarted receiver must know it
			// holds it. Peer-to-peer chunks (no acks) are flushed as often.
			if ackNow || unflushed >= 16 || (len(dirty) > 0 && len(r.jobs) == 0) {
				for rs := range dirty {
					r.flush(rs)
					delete(dirty, rs)
				}
				unflushed = 0
			}
			if ackNow {
				// A failed ack is not fatal: the connection's owner sees it
				// broke, and unacked items are delivered again.
				_ = r.cfg.Host.Ack(acks)
				acks = acks[:0]
			}
			if complete != nil {
				r.finish(complete)
			}
		case <-ctx.Done():
			r.closeAll()
			return
		}
	}
}

// store writes one chunk; it returns the reception when that chunk
// completed it (the caller then finishes it).
func (r *Receiver) store(job chunkJob) *recvState {
	rs := job.rs
	if job.plain != nil {
		defer plainPool.Put(job.plain)
	}
	if rs == nil || rs.failed.Load() || rs.done || rs.retired.Load() || rs.sink == nil {
		return nil
	}
	if job.err != nil {
		r.fail(rs, job.err)
		return nil
	}
	if job.plain == nil || rs.sink.Has(job.index) {
		return nil
	}
	plain, err := unpad(rs, job.index, *job.plain)
	if err == nil {
		err = rs.sink.Write(job.index, plain)
	}
	if err != nil {
		r.fail(rs, err)
		return nil
	}
	r.cfg.Host.Stored(rs.man.File, job.index)
	src := r.source(rs)
	got, bytes := rs.sink.Held()
	r.cfg.Host.Progress(Progress{File: rs.man.File, Name: rs.man.Name, Peer: rs.from, Bytes: bytes, Total: rs.man.Size, Path: src.Path()})
	if got == rs.man.Chunks {
		return rs
	}
	if got%64 == 0 {
		src.Report(&protocol.DCMessage{Kind: protocol.DCProgress, File: uuid.MustParse(rs.man.File), Chunks: got})
	}
	return nil
}

// unpad checks a chunk's size and zero padding (chunks are sealed at full
// size; the last one is padded) and returns its content.
func unpad(rs *recvState, index uint32, plain []byte) ([]byte, error) {
	want := int(chunkLen(rs.man, index))
	if len(plain) != rs.man.ChunkSize || !allZero(plain[want:]) {
		return nil, fmt.Errorf("chunk %d of %q: %d bytes or bad padding, want %d: %w", index, rs.man.Name, len(plain), rs.man.ChunkSize, ErrIntegrity)
	}
	return plain[:want], nil
}

// closeAll closes the sinks of unfinished receptions (partial files stay on
// disk) when the receiver stops.
func (r *Receiver) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range r.recvs {
		if !rs.done && !rs.failed.Load() && rs.sink != nil {
			rs.sink.Close()
		}
	}
}

// begin runs in Run when a reception starts: it takes over the sink of an
// earlier announcement of the same content, and tells the sender which
// chunks it already holds. It returns rs when nothing is missing.
func (r *Receiver) begin(rs *recvState) *recvState {
	if old := rs.adopt; old != nil {
		rs.adopt = nil
		old.retired.Store(true)
		if old.sink == nil || old.failed.Load() || old.done {
			sink, err := r.cfg.Sink(rs.man)
			if err != nil {
				r.fail(rs, err)
				return nil
			}
			rs.sink = sink
		} else {
			rs.sink = old.sink
			old.sink = nil // the old reception's queued chunks are dropped
		}
	}
	got, bytes := rs.sink.Held()
	if got == 0 {
		return nil
	}
	rs.resumed = true
	rs.held = bytes
	r.log.Info("resuming a partial file", "file", rs.man.File, "chunks_held", got, "chunks", rs.man.Chunks)
	r.tellHave(rs, false)
	r.cfg.Host.Progress(Progress{File: rs.man.File, Name: rs.man.Name, Peer: rs.from, Bytes: bytes, Total: rs.man.Size, Path: r.source(rs).Path()})
	if got == rs.man.Chunks {
		return rs
	}
	return nil
}

// tellHave sends the sender a sealed have signal: the chunks held, or that
// the file is complete. Best effort: a sender that never hears it sends
// everything, and the relay's own delivery report still arrives.
func (r *Receiver) tellHave(rs *recvState, done bool) {
	body := &protocol.Signal{Kind: protocol.SignalHave, Session: rs.man.File, File: rs.man.File, Done: done}
	if !done {
		body.Have = rs.sink.Ranges()
		if len(body.Have) > maxHaveRanges {
			body.Have = body.Have[:maxHaveRanges] // a prefix of what is held is still true
		}
	}
	if err := r.cfg.Host.TellHave(rs.from, body); err != nil {
		r.log.Info("could not tell the sender which chunks are held", "file", rs.man.File, "err", err)
	}
}

// maxHaveRanges keeps a have signal well under the signal size limit.
const maxHaveRanges = 1000

func (r *Receiver) flush(rs *recvState) {
	if rs.sink == nil || rs.done || rs.failed.Load() {
		return
	}
	if err := rs.sink.Flush(); err != nil {
		r.log.Warn("chunk bitmap not saved; a restart will fetch those chunks again", "err", err)
	}
}

func (r *Receiver) finish(rs *recvState) {
	final, sum, err := rs.sink.Finish()
	rs.done = err == nil
	if err != nil {
		r.fail(rs, err)
		return
	}
	rs.doneFlag.Store(true)
	src := r.source(rs)
	src.Report(&protocol.DCMessage{Kind: protocol.DCDone, File: uuid.MustParse(rs.man.File)})
	if rs.resumed {
		r.tellHave(rs, true) // the sender may have skipped chunks: the relay cannot report delivery
	}
	_, bytes := rs.sink.Held()
	r.cfg.Host.Progress(Progress{File: rs.man.File, Name: rs.man.Name, Peer: rs.from, Bytes: bytes, Total: rs.man.Size, Path: src.Path(), Done: true})
	r.cfg.Host.Deliver(File{ID: rs.man.File, Name: rs.man.Name, Path: final, Type: rs.man.Type, Size: rs.man.Size, SHA256: sum, From: rs.from, Resumed: rs.held})
}

func (r *Receiver) fail(rs *recvState, err error) {
	rs.failed.Store(true)
	if rs.sink != nil {
		rs.sink.Abort()
	}
	r.source(rs).Report(&protocol.DCMessage{Kind: protocol.DCDone, File: uuid.MustParse(rs.man.File), Failed: true, Reason: truncateReason(err.Error())})
	r.log.Warn("file reception failed", "file", rs.man.File, "err", err)
	r.cfg.Host.Deliver(File{ID: rs.man.File, Name: rs.man.Name, From: rs.from, Err: err})
}
