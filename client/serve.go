package client

import (
	"context"
	"sync"

	"cloakroom/client/transfer"
	"cloakroom/internal/protocol"
)

// linkServer answers one link's wants in order (docs/PROTOCOL.md "Pull"):
// chunks asked by index if held, then chunks of its own choice for "any"
// (entry.pickFor: never sent to anyone first). It runs until the link ends.
type linkServer struct {
	c *Client
	p *peerConn

	mu    sync.Mutex
	queue []serveReq
	per   map[string]int // outstanding wants per file
	wake  chan struct{}
}

type serveReq struct {
	file  string
	index uint32
	any   bool
}

func newLinkServer(c *Client, p *peerConn) *linkServer {
	return &linkServer{c: c, p: p, per: map[string]int{}, wake: make(chan struct{}, 1)}
}

// want queues a want message (beyond MaxOutstandingWants per file, the
// rest is ignored: the asker's window is smaller).
func (s *linkServer) want(file string, m *protocol.DCMessage) {
	if s.c.lib.get(file) == nil {
		return
	}
	s.mu.Lock()
	for _, i := range m.Indices {
		if s.per[file] >= protocol.MaxOutstandingWants {
			break
		}
		s.queue = append(s.queue, serveReq{file: file, index: i})
		s.per[file]++
	}
	for range m.Any {
		if s.per[file] >= protocol.MaxOutstandingWants {
			break
		}
		s.queue = append(s.queue, serveReq{file: file, any: true})
		s.per[file]++
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// cancel drops the queued wants of a file.
func (s *linkServer) cancel(file string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue[:0]
	for _, r := range s.queue {
		if r.file != file {
			q = append(q, r)
		}
	}
	s.queue = q
	s.per[file] = 0
}

func (s *linkServer) next() (serveReq, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return serveReq{}, false
	}
	r := s.queue[0]
	s.queue = s.queue[1:]
	s.per[r.file]--
	return r, true
}

func (s *linkServer) run() {
	ctx, cancel := context.WithCancel(s.c.ctx)
	defer cancel()
	go func() {
		select {
		case <-s.p.failed:
			cancel()
		case <-ctx.Done():
		}
	}()
	plain := make([]byte, protocol.ChunkSize)
	frame := make([]byte, 0, protocol.ChunkUpHeader+protocol.ChunkSize+16)
	for {
		r, ok := s.next()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if err := s.serve(ctx, r, plain, &frame); err != nil {
			s.c.log.Debug("serving a chunk failed", "member", short8(s.p.member), "err", err)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// serve sends one chunk for r, if this member holds it.
func (s *linkServer) serve(ctx context.Context, r serveReq, plain []byte, frame *[]byte) error {
	e := s.c.lib.get(r.file)
	if e == nil || r.index >= e.man.Chunks {
		return nil
	}
	i := r.index
	if r.any {
		var ok bool
		if i, ok = e.pickFor(s.p.member, func(m string) bool { return s.c.links.get(m) != nil }); !ok {
			return nil
		}
	} else if !e.has(i) {
		return nil
	} else {
		e.sentChunk(s.p.member, i)
	}
	f, err := e.reader()
	if err != nil {
		return err
	}
	*frame, err = transfer.SealChunk(f, e.man.Name, e.man, e.fid, e.cipher, i, plain, (*frame)[:0])
	if err != nil {
		return err
	}
	if err := s.p.send(ctx, *frame); err != nil {
		return err
	}
	e.served.Add(transfer.ChunkLen(e.man, i))
	return nil
}
