package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// SendReport says what happened to a file for each recipient.
type SendReport struct {
	File      string
	Name      string
	Size      int64
	Delivered []string          // members that acked every chunk
	Failed    map[string]string // member -> reason
	Path      string            // "relay"
	Duration  time.Duration
}

// sendState tracks one outgoing file; the read loop feeds it server events.
type sendState struct {
	file   string
	events chan *protocol.Message
	mu     sync.Mutex
	fail   error
	failed chan struct{}
}

func (s *sendState) presence(member, event string) {
	select {
	case s.events <- &protocol.Message{Type: protocol.TypePresence, Member: member, Event: event}:
	default:
	}
}

func (s *sendState) abort(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		s.fail = err
		close(s.failed)
	}
}

// routeSend hands a server event to the send it concerns.
func (c *Client) routeSend(m *protocol.Message) {
	c.mu.Lock()
	s := c.sends[m.File]
	c.mu.Unlock()
	if s == nil {
		return
	}
	if m.Type == protocol.TypeError {
		s.abort(serverError(m))
		return
	}
	select {
	case s.events <- m:
	default:
		c.log.Warn("send event queue full; dropping progress", "file", m.File)
	}
}

// failSends aborts every send in progress (the connection broke).
func (c *Client) failSends(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sends {
		s.abort(err)
	}
}

// SendFile sends the file at path to every member online when it starts
// (waiting for one to be online if none is), through the relay, and returns
// once each recipient received it or was reported unreachable.
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
	man, key, err := c.prepareManifest(f, st)
	if err != nil {
		return nil, err
	}
	if err := c.waitForMember(ctx); err != nil {
		return nil, err
	}
	s := &sendState{file: man.File, events: make(chan *protocol.Message, 4096), failed: make(chan struct{})}
	c.mu.Lock()
	c.sends[man.File] = s
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.sends, man.File)
		c.mu.Unlock()
	}()
	start := time.Now()
	recipients, err := c.announceFile(ctx, s, man)
	if err != nil {
		return nil, err
	}
	if err := c.uploadChunks(ctx, s, f, man, key); err != nil {
		return nil, err
	}
	rep, err := c.awaitDelivery(ctx, s, man, recipients)
	if rep != nil {
		rep.Duration = time.Since(start)
	}
	return rep, err
}

func (c *Client) prepareManifest(f *os.File, st os.FileInfo) (*crypto.Manifest, []byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, nil, fmt.Errorf("send: hash %s: %w", f.Name(), err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, fmt.Errorf("send: file key: %w", err)
	}
	name := filepath.Base(f.Name())
	typ := mime.TypeByExtension(filepath.Ext(name))
	if typ == "" {
		typ = "application/octet-stream"
	}
	man := &crypto.Manifest{
		File: uuid.NewString(), Name: name, Type: typ, Size: st.Size(), ChunkSize: protocol.ChunkSize,
		Chunks: crypto.ChunkCount(st.Size(), protocol.ChunkSize), SHA256: hex.EncodeToString(h.Sum(nil)),
		Key: protocol.EncodeB64(key),
	}
	return man, key, nil
}

// waitForMember returns once at least one other member is online.
func (c *Client) waitForMember(ctx context.Context) error {
	for len(c.OnlineMembers()) == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("send: waiting for another member to join: %w", ErrNoMembers)
		case <-c.done:
			return fmt.Errorf("send: %w", ErrClosed)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func (c *Client) announceFile(ctx context.Context, s *sendState, man *crypto.Manifest) ([]string, error) {
	sealed, err := c.keys.SealManifest(c.id, man)
	if err != nil {
		return nil, fmt.Errorf("send: seal manifest: %w", err)
	}
	msg := &protocol.Message{Type: protocol.TypeFile, File: man.File, Chunks: man.Chunks, Data: protocol.EncodeB64(sealed)}
	if err := c.writeJSON(msg); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	for {
		select {
		case m := <-s.events:
			if m.Type == protocol.TypeFileOK {
				if len(m.Recipients) == 0 {
					return nil, fmt.Errorf("send: %w", ErrNoMembers)
				}
				return m.Recipients, nil
			}
		case <-s.failed:
			return nil, fmt.Errorf("send: %w", s.fail)
		case <-ctx.Done():
			return nil, fmt.Errorf("send: %w", ctx.Err())
		}
	}
}

func (c *Client) uploadChunks(ctx context.Context, s *sendState, f *os.File, man *crypto.Manifest, key []byte) error {
	fid := uuid.MustParse(man.File)
	ciph, err := crypto.NewChunkCipher(key, c.keys.RoomID, c.id, fid, man.Chunks, man.Size)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	plain := make([]byte, protocol.ChunkSize)
	frame := make([]byte, 0, protocol.ChunkUpHeader+protocol.MaxSealedChunk)
	var sent int64
	for i := uint32(0); i < man.Chunks; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		off := int64(i) * int64(man.ChunkSize)
		want := int(min(int64(man.ChunkSize), man.Size-off))
		n, err := f.ReadAt(plain[:want], off)
		if n < want {
			return fmt.Errorf("send: read %s (did it change while sending?): %w", f.Name(), err)
		}
		// Every chunk, the last included, is sealed at full size (zero
		// padding), so the relay learns the chunk count and not the size.
		clear(plain[n:])
		ch := protocol.Chunk{File: fid, Index: i, Count: man.Chunks, Final: i == man.Chunks-1}
		frame = ciph.Seal(ch.AppendUp(frame[:0]), i, plain)
		if err := c.write(websocket.BinaryMessage, frame); err != nil {
			return fmt.Errorf("send: upload chunk %d: %w", i, err)
		}
		select {
		case <-s.failed:
			return fmt.Errorf("send: %w", s.fail)
		default:
		}
		sent += int64(n)
		c.progress(Progress{File: man.File, Name: man.Name, Sending: true, Bytes: sent, Total: man.Size, Path: "relay"})
	}
	return nil
}

// awaitDelivery waits for delivered/undeliverable for every recipient. A
// recipient that goes offline gets OfflineGrace to come back.
func (c *Client) awaitDelivery(ctx context.Context, s *sendState, man *crypto.Manifest, recipients []string) (*SendReport, error) {
	rep := &SendReport{File: man.File, Name: man.Name, Size: man.Size, Failed: map[string]string{}, Path: "relay"}
	pending := map[string]bool{}
	for _, r := range recipients {
		pending[r] = true
	}
	offline := map[string]time.Time{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for len(pending) > 0 {
		select {
		case m := <-s.events:
			c.sendEvent(m, man, pending, offline, rep)
		case now := <-tick.C:
			for r, since := range offline {
				if pending[r] && now.Sub(since) > c.opts.OfflineGrace {
					delete(pending, r)
					rep.Failed[r] = "went offline mid-transfer (the relay keeps its chunks until they expire)"
				}
			}
		case <-s.failed:
			return rep, fmt.Errorf("send: %w", s.fail)
		case <-ctx.Done():
			return rep, fmt.Errorf("send: %w", ctx.Err())
		}
	}
	if len(rep.Failed) > 0 {
		return rep, fmt.Errorf("send: %d of %d recipients did not get %q: %w", len(rep.Failed), len(recipients), man.Name, ErrFileLost)
	}
	return rep, nil
}

func (c *Client) sendEvent(m *protocol.Message, man *crypto.Manifest, pending map[string]bool, offline map[string]time.Time, rep *SendReport) {
	if !pending[m.Member] {
		return
	}
	switch m.Type {
	case protocol.TypeProgress:
		c.progress(Progress{File: man.File, Name: man.Name, Peer: m.Member, Sending: true, Bytes: min(int64(m.Acked)*int64(man.ChunkSize), man.Size), Total: man.Size, Path: "relay"})
	case protocol.TypeDelivered:
		delete(pending, m.Member)
		rep.Delivered = append(rep.Delivered, m.Member)
		c.progress(Progress{File: man.File, Name: man.Name, Peer: m.Member, Sending: true, Bytes: man.Size, Total: man.Size, Path: "relay", Done: true})
	case protocol.TypeUndeliverable:
		delete(pending, m.Member)
		rep.Failed[m.Member] = m.Error
	case protocol.TypePresence:
		switch m.Event {
		case protocol.EventOffline:
			offline[m.Member] = time.Now()
		case protocol.EventOnline:
			delete(offline, m.Member)
		case protocol.EventLeave:
			delete(pending, m.Member)
			rep.Failed[m.Member] = "left the room"
		}
	}
}
