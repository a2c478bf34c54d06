package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/google/uuid"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// File is a received file (or a failed reception, with Err set).
type File struct {
	ID     string
	Name   string // name given by the sender
	Path   string // where it was written
	Type   string
	Size   int64
	SHA256 string
	From   string
	Err    error
	// Resumed is how many bytes were already held when the reception began
	// (a partial file from an earlier announcement or an earlier run).
	Resumed int64
}

// Progress reports a transfer's advance.
type Progress struct {
	File    string
	Name    string
	Peer    string // the other member; "" for a send's overall upload
	Sending bool
	Bytes   int64
	Total   int64
	Path    protocol.Path // the path the chunks take
	Done    bool
}

// recvState is one incoming file, written chunk by chunk to a partial file.
type recvState struct {
	man         *crypto.Manifest
	from        string
	cipher      *crypto.ChunkCipher
	f           *os.File
	part        string
	have        *haveMap
	got         uint32
	bytes       int64
	hash        hash.Hash
	hashed      uint32      // chunks hashed so far, in order
	failed      atomic.Bool // set by the disk loop, read by the read loop
	done        bool        // disk loop only
	doneFlag    atomic.Bool // done, for other goroutines
	started     time.Time
	path        protocol.Path // guarded by c.mu
	notify      *peerConn     // peer-to-peer sender to tell about progress; guarded by c.mu
	resumed     bool          // started from chunks already held: the sender was told (disk loop only)
	heldAtStart int64         // bytes held when the reception began (disk loop only)
	retired     atomic.Bool   // handed over to a newer announcement of the same content
	adopt       *recvState    // set at creation: take over this one's partial file (disk loop)
}

// NextFile waits for the next received (or failed) file.
func (c *Client) NextFile(ctx context.Context) (File, error) {
	select {
	case f := <-c.files:
		return f, nil
	case <-ctx.Done():
		return File{}, ctx.Err()
	case <-c.done:
		select {
		case f := <-c.files:
			return f, nil
		default:
		}
		if err := c.Err(); err != nil {
			return File{}, err
		}
		return File{}, fmt.Errorf("client closed: %w", ErrClosed)
	}
}

func (c *Client) handleManifest(m *protocol.Message, meta crypto.EnvelopeMeta, sealed []byte) error {
	man, err := c.keys.OpenManifest(meta, sealed)
	if err != nil {
		c.log.Warn("file manifest failed to open; dropping", "from", m.From, "err", err)
		return c.ack(m.ID)
	}
	if err := c.startRecv(man, m.From, nil, protocol.PathRelay); err != nil {
		c.deliverFile(File{ID: man.File, Name: man.Name, From: m.From, Err: err})
	}
	return c.ack(m.ID)
}

// startRecv prepares the reception of a file announced by from, through the
// relay (peer nil) or a peer-to-peer session. A file already being received
// keeps its partial state: chunks from any path verify the same way.
func (c *Client) startRecv(man *crypto.Manifest, from string, peer *peerConn, path protocol.Path) error {
	c.mu.Lock()
	rs := c.recvs[man.File]
	c.mu.Unlock()
	if rs != nil {
		if rs.from != from {
			return fmt.Errorf("file id %s reused by another member: %w", man.File, ErrIntegrity)
		}
		c.setRecvPeer(rs, peer, path)
		return nil
	}
	c.mu.Lock()
	old := c.sameContentLocked(man)
	if old != nil {
		old.retired.Store(true)
		delete(c.recvs, old.man.File)
	}
	c.mu.Unlock()
	var err error
	if old != nil {
		rs, err = c.adoptRecv(man, from, old)
	} else {
		rs, err = c.newRecv(man, from)
	}
	if err != nil {
		return err
	}
	rs.path = path
	rs.notify = peer
	c.mu.Lock()
	c.recvs[man.File] = rs
	c.mu.Unlock()
	// The disk loop takes over the old partial file (in order with the
	// chunks already queued) and tells the sender what it can skip.
	select {
	case c.chunks <- chunkJob{rs: rs, start: true}:
	case <-c.ctx.Done():
	}
	return nil
}

// sameContentLocked finds an unfinished reception of the content man
// announces (a previous round of the same file).
func (c *Client) sameContentLocked(man *crypto.Manifest) *recvState {
	for _, rs := range c.recvs {
		if rs.man.SHA256 == man.SHA256 && rs.man.Size == man.Size && rs.man.ChunkSize == man.ChunkSize &&
			!rs.doneFlag.Load() && !rs.failed.Load() && !rs.retired.Load() {
			return rs
		}
	}
	return nil
}

// setRecvPeer switches an existing reception to a new path; a file already
// complete is confirmed to the new sender session at once.
func (c *Client) setRecvPeer(rs *recvState, peer *peerConn, path protocol.Path) {
	c.mu.Lock()
	done, failed := rs.doneFlag.Load(), rs.failed.Load()
	rs.notify, rs.path = peer, path
	c.mu.Unlock()
	if peer != nil && (done || failed) {
		peer.notify(&protocol.DCMessage{Kind: protocol.DCDone, File: uuid.MustParse(rs.man.File), Failed: failed, Reason: "already handled"})
	}
}

func (c *Client) newRecv(man *crypto.Manifest, from string) (*recvState, error) {
	ciph, err := chunkCipherFor(c.keys, man, from)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("receive dir: %w", err)
	}
	if err := checkManifestShape(man); err != nil {
		return nil, err
	}
	f, part, hm, err := openPartial(c.opts.Dir, man)
	if err != nil {
		return nil, err
	}
	preallocate(f, man.Size)
	rs := &recvState{
		man: man, from: from, cipher: ciph, f: f, part: part, have: hm,
		hash: sha256.New(), started: time.Now(),
	}
	rs.count()
	return rs, nil
}

// adoptRecv starts a reception that continues old's partial file; the disk
// loop moves the file over when it reaches the start job.
func (c *Client) adoptRecv(man *crypto.Manifest, from string, old *recvState) (*recvState, error) {
	ciph, err := chunkCipherFor(c.keys, man, from)
	if err != nil {
		return nil, err
	}
	return &recvState{man: man, from: from, cipher: ciph, adopt: old, hash: sha256.New(), started: time.Now()}, nil
}

func chunkCipherFor(keys *crypto.RoomKeys, man *crypto.Manifest, from string) (*crypto.ChunkCipher, error) {
	key, err := protocol.DecodeB64(man.Key)
	if err != nil {
		return nil, fmt.Errorf("manifest key: %w", err)
	}
	fid, err := uuid.Parse(man.File)
	if err != nil {
		return nil, fmt.Errorf("manifest file id: %w", err)
	}
	ciph, err := crypto.NewChunkCipher(key, keys.RoomID, from, fid, man.Chunks, man.Size)
	if err != nil {
		return nil, fmt.Errorf("chunk cipher: %w", err)
	}
	return ciph, nil
}

// checkManifestShape refuses a manifest whose SHA-256 could not name a file.
func checkManifestShape(man *crypto.Manifest) error {
	if len(man.SHA256) != 64 || strings.Trim(man.SHA256, "0123456789abcdef") != "" {
		return fmt.Errorf("manifest SHA-256 %q: %w", truncateReason(man.SHA256), ErrIntegrity)
	}
	return nil
}

// count recomputes got and bytes from the bitmap (a resumed partial file).
func (rs *recvState) count() {
	rs.got, rs.bytes = 0, 0
	for i := uint32(0); i < rs.man.Chunks; i++ {
		if rs.have.has(i) {
			rs.got++
			rs.bytes += rs.chunkLen(i)
		}
	}
}

func (rs *recvState) chunkLen(i uint32) int64 {
	if i == rs.man.Chunks-1 {
		return rs.man.Size - int64(i)*int64(rs.man.ChunkSize)
	}
	return int64(rs.man.ChunkSize)
}

// chunkJob is a chunk on its way from the read loop to the disk loop:
// decrypted already (plain), or an error to report, or nothing but an ack.
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

// handleChunk opens one relay chunk in the read loop and hands it to the
// disk loop, so reading and decrypting the next chunk overlaps writing this one.
func (c *Client) handleChunk(d *protocol.ChunkDown) error {
	return c.queueChunk(d, nil)
}

// queueChunk opens a chunk (from the relay, or from peer) and queues it for
// the disk loop; it blocks while the disk loop is behind (back-pressure).
func (c *Client) queueChunk(d *protocol.ChunkDown, peer *peerConn) error {
	fileID := uuid.UUID(d.File).String()
	sender := uuid.UUID(d.Sender).String()
	c.mu.Lock()
	rs := c.recvs[fileID]
	c.mu.Unlock()
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
		job.plain = bp
	}
	var gone <-chan struct{}
	if peer != nil {
		gone = peer.failed
	}
	select {
	case c.chunks <- job:
		return nil
	case <-gone:
		return peer.Err()
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// diskLoop writes chunks to their partial files, checks completed files, and
// acks what it wrote, batching acks while more chunks are waiting.
func (c *Client) diskLoop() {
	defer c.wg.Done()
	var acks []uint64
	dirty := map[*recvState]bool{}
	unflushed := 0
	for {
		select {
		case job := <-c.chunks:
			var complete *recvState
			if job.start {
				complete = c.beginRecv(job.rs)
			} else {
				complete = c.storeChunk(job)
			}
			if job.rs != nil && job.rs.have != nil {
				dirty[job.rs] = true
				unflushed++
			}
			if job.item != 0 {
				acks = append(acks, job.item)
			}
			// Acks go out before a completed file is handed to the user, who
			// may close the client at once: the sender must hear of it.
			ackNow := len(acks) >= 16 || (len(acks) > 0 && (len(c.chunks) == 0 || complete != nil))
			// The bitmaps reach the disk before the acks: an acked chunk is
			// never delivered again, so a restarted receiver must know it
			// holds it. Peer-to-peer chunks (no acks) are flushed as often.
			if ackNow || unflushed >= 16 || (len(dirty) > 0 && len(c.chunks) == 0) {
				for rs := range dirty {
					c.flushHave(rs)
					delete(dirty, rs)
				}
				unflushed = 0
			}
			if ackNow {
				// A failed ack is not fatal: the read loop sees the broken
				// connection itself, and unacked items are delivered again.
				_ = c.writeJSON(&protocol.Message{Type: protocol.TypeAck, IDs: acks})
				acks = acks[:0]
			}
			if complete != nil {
				c.finishRecv(complete)
			}
		case <-c.ctx.Done():
			c.closeRecvs()
			return
		}
	}
}

// storeChunk writes one chunk; it returns the reception when that chunk
// completed it (the caller then finishes it).
func (c *Client) storeChunk(job chunkJob) *recvState {
	rs := job.rs
	if job.plain != nil {
		defer plainPool.Put(job.plain)
	}
	if rs == nil || rs.failed.Load() || rs.done || rs.retired.Load() || rs.f == nil {
		return nil
	}
	if job.err != nil {
		c.failRecv(rs, job.err)
		return nil
	}
	if job.plain == nil || rs.have.has(job.index) {
		return nil
	}
	if err := rs.write(job.index, *job.plain); err != nil {
		c.failRecv(rs, err)
		return nil
	}
	c.mu.Lock()
	path, peer := rs.path, rs.notify
	c.mu.Unlock()
	c.progress(Progress{File: rs.man.File, Name: rs.man.Name, Peer: rs.from, Bytes: rs.bytes, Total: rs.man.Size, Path: path})
	if rs.got == rs.man.Chunks {
		return rs
	}
	if peer != nil && rs.got%64 == 0 {
		peer.notify(&protocol.DCMessage{Kind: protocol.DCProgress, File: uuid.MustParse(rs.man.File), Chunks: rs.got})
	}
	return nil
}

// closeRecvs closes the partial files of unfinished receptions (they stay on
// disk) when the client stops.
func (c *Client) closeRecvs() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range c.recvs {
		if !rs.done && !rs.failed.Load() && rs.f != nil {
			c.flushHave(rs)
			rs.f.Close()
			rs.have.side.Close()
		}
	}
}

// beginRecv runs in the disk loop when a reception starts: it takes over the
// partial file of an earlier announcement of the same content, and tells the
// sender which chunks it already holds. It returns rs when nothing is missing.
func (c *Client) beginRecv(rs *recvState) *recvState {
	if old := rs.adopt; old != nil {
		rs.adopt = nil
		if old.f == nil || old.failed.Load() || old.done {
			f, part, hm, err := openPartial(c.opts.Dir, rs.man)
			if err != nil {
				c.failRecv(rs, err)
				return nil
			}
			rs.f, rs.part, rs.have = f, part, hm
			rs.count()
		} else {
			rs.f, rs.part, rs.have = old.f, old.part, old.have
			rs.got, rs.bytes, rs.hash, rs.hashed = old.got, old.bytes, old.hash, old.hashed
			old.f = nil // the old reception's queued chunks are dropped
		}
	}
	if rs.f == nil || rs.got == 0 {
		return nil
	}
	rs.resumed = true
	rs.heldAtStart = rs.bytes
	c.log.Info("resuming a partial file", "file", rs.man.File, "chunks_held", rs.got, "chunks", rs.man.Chunks)
	c.tellHave(rs, false)
	c.mu.Lock()
	path := rs.path
	c.mu.Unlock()
	c.progress(Progress{File: rs.man.File, Name: rs.man.Name, Peer: rs.from, Bytes: rs.bytes, Total: rs.man.Size, Path: path})
	if rs.got == rs.man.Chunks {
		return rs
	}
	return nil
}

// tellHave sends the sender a sealed have signal: the chunks held, or that
// the file is complete. Best effort: a sender that never hears it sends
// everything, and the relay's own delivery report still arrives.
func (c *Client) tellHave(rs *recvState, done bool) {
	body := &protocol.Signal{Kind: protocol.SignalHave, Session: rs.man.File, File: rs.man.File, Done: done}
	if !done {
		body.Have = rs.have.ranges(rs.man.Chunks)
		if len(body.Have) > maxHaveRanges {
			body.Have = body.Have[:maxHaveRanges] // a prefix of what is held is still true
		}
	}
	if err := c.sendSignal(rs.from, body); err != nil {
		c.log.Info("could not tell the sender which chunks are held", "file", rs.man.File, "err", err)
	}
}

// maxHaveRanges keeps a have signal well under the signal size limit.
const maxHaveRanges = 1000

func (c *Client) flushHave(rs *recvState) {
	if rs.have == nil || rs.f == nil || rs.done || rs.failed.Load() {
		return
	}
	if err := rs.have.flush(); err != nil {
		c.log.Warn("chunk bitmap not saved; a restart will fetch those chunks again", "err", err)
	}
}

func (rs *recvState) write(index uint32, plain []byte) error {
	// Chunks are sealed at full size; the last one is zero-padded.
	want := rs.man.ChunkSize
	if index == rs.man.Chunks-1 {
		want = int(rs.man.Size - int64(index)*int64(rs.man.ChunkSize))
	}
	if len(plain) != rs.man.ChunkSize || !allZero(plain[want:]) {
		return fmt.Errorf("chunk %d of %q: %d bytes or bad padding, want %d: %w", index, rs.man.Name, len(plain), rs.man.ChunkSize, ErrIntegrity)
	}
	plain = plain[:want]
	if _, err := rs.f.WriteAt(plain, int64(index)*int64(rs.man.ChunkSize)); err != nil {
		return fmt.Errorf("write %s: %w", rs.part, err)
	}
	if index == rs.hashed {
		rs.hash.Write(plain)
		rs.hashed++
	}
	rs.have.set(index)
	rs.got++
	rs.bytes += int64(len(plain))
	return nil
}

func (c *Client) finishRecv(rs *recvState) {
	sum, err := rs.sum()
	if err == nil && sum != rs.man.SHA256 {
		err = fmt.Errorf("%q: SHA-256 %s, manifest says %s: %w", rs.man.Name, sum, rs.man.SHA256, ErrIntegrity)
	}
	if err != nil {
		c.failRecv(rs, err)
		return
	}
	if err := rs.f.Close(); err != nil {
		c.failRecv(rs, fmt.Errorf("close %s: %w", rs.part, err))
		return
	}
	rs.done = true
	rs.have.side.Close()
	final, err := placeFile(c.opts.Dir, rs.man.Name, rs.part)
	if err != nil {
		c.failRecv(rs, err)
		return
	}
	rs.doneFlag.Store(true)
	c.mu.Lock()
	path, peer := rs.path, rs.notify
	c.mu.Unlock()
	os.Remove(sidecarOf(rs.part))
	if peer != nil {
		peer.notify(&protocol.DCMessage{Kind: protocol.DCDone, File: uuid.MustParse(rs.man.File)})
	}
	if rs.resumed {
		c.tellHave(rs, true) // the sender may have skipped chunks: the relay cannot report delivery
	}
	c.progress(Progress{File: rs.man.File, Name: rs.man.Name, Peer: rs.from, Bytes: rs.bytes, Total: rs.man.Size, Path: path, Done: true})
	c.deliverFile(File{ID: rs.man.File, Name: rs.man.Name, Path: final, Type: rs.man.Type, Size: rs.man.Size, SHA256: sum, From: rs.from, Resumed: rs.heldAtStart})
}

// sum returns the hex SHA-256 of the file: from the running hash when every
// chunk came in order, else by reading the partial file back.
func (rs *recvState) sum() (string, error) {
	if rs.hashed == rs.man.Chunks {
		return hex.EncodeToString(rs.hash.Sum(nil)), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(rs.f, 0, rs.man.Size)); err != nil {
		return "", fmt.Errorf("hash %s: %w", rs.part, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (c *Client) failRecv(rs *recvState, err error) {
	rs.failed.Store(true)
	if rs.f != nil {
		rs.f.Close()
		rs.have.side.Close()
		removePartial(rs.part)
	}
	c.mu.Lock()
	peer := rs.notify
	c.mu.Unlock()
	if peer != nil {
		peer.notify(&protocol.DCMessage{Kind: protocol.DCDone, File: uuid.MustParse(rs.man.File), Failed: true, Reason: truncateReason(err.Error())})
	}
	c.log.Warn("file reception failed", "file", rs.man.File, "err", err)
	c.deliverFile(File{ID: rs.man.File, Name: rs.man.Name, From: rs.from, Err: err})
}

func (c *Client) deliverFile(f File) {
	select {
	case c.files <- f:
	default:
		c.log.Warn("received-file queue full; caller is not reading NextFile", "file", f.ID)
	}
}

func (c *Client) progress(p Progress) {
	if c.opts.OnProgress != nil {
		c.opts.OnProgress(p)
	}
}

// SafeName makes a sender-chosen file name safe to create and to print: no
// path separators, no control or bidi-format characters, not hidden.
func SafeName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ".")
	if name == "" {
		name = "unnamed"
	}
	return name
}

// placeFile renames the finished partial file to name inside dir, adding
// " (1)", " (2)"… before the extension rather than overwriting a file.
func placeFile(dir, name, part string) (string, error) {
	name = SafeName(name)
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 0; i < 1000; i++ {
		cand := name
		if i > 0 {
			cand = fmt.Sprintf("%s (%d)%s", stem, i, ext)
		}
		path := filepath.Join(dir, cand)
		if err := os.Link(part, path); err == nil {
			os.Remove(part)
			return path, nil
		} else if !os.IsExist(err) {
			// No hard links here (FAT, some network file systems): rename,
			// after checking the name is free.
			if _, serr := os.Lstat(path); os.IsNotExist(serr) {
				if rerr := os.Rename(part, path); rerr != nil {
					return "", fmt.Errorf("place %s: %w", path, rerr)
				}
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("place %q: too many files with that name", name)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func truncateReason(s string) string {
	if len(s) > 200 {
		return strings.ToValidUTF8(s[:200], "")
	}
	return s
}
