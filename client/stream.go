package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	"cloakroom/client/transfer"
)

// Stream reads a library entry's content in order while this member
// receives it (Fetch; with Options.Sequential the lowest chunks come
// first). A Read waits until the next chunk is written to this member's
// copy on disk — woken by the write, not by polling — and reads it from
// there, so the copy on disk is the only buffer: memory stays bounded by
// the caller's buffer whatever the file's size.
//
// At the end the Stream checks the SHA-256 of everything it returned
// against the manifest: a mismatch is an error wrapping ErrIntegrity in
// place of io.EOF. The bytes before it were already returned, so a
// consumer of a stream must treat them as unverified until Read says
// io.EOF. A failed reception ends Reads with its error; ctx ends them with
// ctx's. A Stream is for one goroutine.
type Stream struct {
	ctx  context.Context
	e    *entry
	dir  string // where a reception keeps its partial file
	f    *os.File
	off  int64
	hash hash.Hash
}

// OpenStream opens a Stream of library entry id (held already, or being
// received: see Fetch).
func (c *Client) OpenStream(ctx context.Context, id string) (*Stream, error) {
	e := c.lib.get(id)
	if e == nil {
		return nil, fmt.Errorf("file %s: %w", id, ErrNoHolder)
	}
	return &Stream{ctx: ctx, e: e, dir: c.opts.Dir, hash: sha256.New()}, nil
}

// Size is the file's size.
func (s *Stream) Size() int64 { return s.e.man.Size }

// Read reads the next bytes of the file, waiting for them to be received.
func (s *Stream) Read(p []byte) (int, error) {
	size := s.e.man.Size
	if s.off >= size {
		return 0, s.check()
	}
	if len(p) == 0 {
		return 0, nil
	}
	cs := int64(s.e.man.ChunkSize)
	end, path, err := s.e.waitHeld(s.ctx, uint32(s.off/cs), uint32(int64(len(p))/cs)+1)
	if err != nil {
		return 0, err
	}
	if s.f == nil {
		if err := s.open(path); err != nil {
			return 0, err
		}
	}
	n, err := s.f.ReadAt(p[:min(int64(len(p)), end-s.off)], s.off)
	s.hash.Write(p[:n])
	s.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	if err != nil {
		return n, fmt.Errorf("read %q: %w", SafeName(s.e.man.Name), err)
	}
	return n, nil
}

// open opens this member's copy. The partial file is renamed to its final
// name when the reception ends: an open that misses it looks again.
func (s *Stream) open(path string) error {
	if path == "" { // a reception through the relay: the entry learns its path at the end
		path = transfer.PartPath(s.dir, s.e.man)
	}
	for range 3 {
		f, err := os.Open(path)
		if err == nil {
			s.f = f
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("open our copy of %q: %w", SafeName(s.e.man.Name), err)
		}
		s.e.mu.Lock()
		next, failed := s.e.path, s.e.failErr
		s.e.mu.Unlock()
		if failed != nil {
			return failed
		}
		if next == path {
			return fmt.Errorf("open our copy of %q: %w", SafeName(s.e.man.Name), err)
		}
		path = next
	}
	return fmt.Errorf("open our copy of %q: it keeps moving", SafeName(s.e.man.Name))
}

// check compares the SHA-256 of what was read with the manifest's.
func (s *Stream) check() error {
	if sum := hex.EncodeToString(s.hash.Sum(nil)); sum != s.e.man.SHA256 {
		return fmt.Errorf("%q: the bytes streamed have SHA-256 %s, the manifest says %s: %w", SafeName(s.e.man.Name), sum, s.e.man.SHA256, transfer.ErrIntegrity)
	}
	return io.EOF
}

// Close closes the Stream's file.
func (s *Stream) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// waitHeld waits until chunk i is held and returns the end offset of the
// run of held chunks from i (at most max chunks) and where our copy is.
func (e *entry) waitHeld(ctx context.Context, i, max uint32) (end int64, path string, err error) {
	for {
		e.mu.Lock()
		if e.held.Has(i) {
			j := i + 1
			for j < e.man.Chunks && j-i < max && e.held.Has(j) {
				j++
			}
			end, path = min(int64(j)*int64(e.man.ChunkSize), e.man.Size), e.path
			e.mu.Unlock()
			return end, path, nil
		}
		if err := e.failErr; err != nil {
			e.mu.Unlock()
			return 0, "", err
		}
		if e.wake == nil {
			e.wake = make(chan struct{})
		}
		wake := e.wake
		e.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, "", ctx.Err()
		}
	}
}

// CancelFetch ends this member's fetch of library entry id, if one runs:
// every source is told to drop what it still owes (a cancel message) and
// chunks still on their way are ignored. It returns once the sources were
// told (or ctx ended). The reception is not resumed in this session.
func (c *Client) CancelFetch(ctx context.Context, id string) {
	f := c.fetchOf(id)
	if f == nil {
		return
	}
	f.stop()
	select {
	case <-f.ended:
	case <-ctx.Done():
	}
}

// Receiving reports whether library entry id is being received now (a
// fetch, or a file its sender is sending to this member).
func (c *Client) Receiving(id string) bool { return c.recv.Active(id) }
