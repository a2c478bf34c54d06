package signaling

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// sessionTable finds HTTP fallback sessions by token.
type sessionTable struct {
	mu sync.Mutex
	m  map[string]*session
}

func (t *sessionTable) add(ss *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]*session)
	}
	t.m[ss.token] = ss
}

func (t *sessionTable) get(token string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[token]
}

func (t *sessionTable) remove(ss *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[ss.token] == ss {
		delete(t.m, ss.token)
	}
}

// sessionWire is a session that leaves the table sessionLinger after it
// closes, once its client had the time to fetch its last frames.
type sessionWire struct {
	*session
	table *sessionTable
	once  sync.Once
}

func (w *sessionWire) Close() error {
	w.once.Do(func() {
		time.AfterFunc(sessionLinger, func() { w.table.remove(w.session) })
	})
	return w.session.Close()
}

// serveOpen starts an HTTP fallback session: POST /h/open answers
// {"s": TOKEN}; the session is then a connection like a WebSocket.
func (s *Server) serveOpen(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	s.accept(w, r, func() (wire, error) {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		ss := newSession(hex.EncodeToString(b[:]))
		s.sessions.add(ss)
		noStore(w)
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(map[string]string{"s": ss.token}); err != nil {
			s.sessions.remove(ss)
			return nil, fmt.Errorf("open: %w", err)
		}
		return &sessionWire{session: ss, table: &s.sessions}, nil
	})
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}

// session returns the request's session, or answers 403/404 and nil.
func (s *Server) session(w http.ResponseWriter, r *http.Request) *session {
	if !s.checkOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return nil
	}
	ss := s.sessions.get(r.URL.Query().Get("s"))
	if ss == nil {
		http.Error(w, "no such session", http.StatusNotFound)
	}
	return ss
}

// serveDown streams the frames after ack (GET /h/down?s=TOKEN&ack=N) for
// up to downHold or downPerGET bytes; a newer GET ends it.
func (s *Server) serveDown(w http.ResponseWriter, r *http.Request) {
	ss := s.session(w, r)
	if ss == nil {
		return
	}
	seq, err := strconv.ParseUint(r.URL.Query().Get("ack"), 10, 64)
	if err != nil {
		http.Error(w, "bad ack", http.StatusBadRequest)
		return
	}
	gen, err := ss.ack(seq)
	switch {
	case errors.Is(err, errSessionClosed):
		http.Error(w, "session closed", http.StatusGone)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	ss.touch()
	noStore(w)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: stream, do not buffer
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	// A stream ends before the client would count as silent (PongWait).
	hold := time.NewTimer(min(downHold, s.cfg.PingInterval))
	defer hold.Stop()
	sent := 0
	for sent < downPerGET {
		frames, end, err := ss.nextDown(r.Context(), gen, seq, hold.C)
		_ = rc.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return
			}
			seq++
			sent += len(f)
		}
		if len(frames) > 0 && rc.Flush() != nil {
			return
		}
		if end || err != nil {
			return
		}
	}
}

// serveUp takes frames from the client (POST /h/up?s=TOKEN&seq=M, the
// body's first frame being number M): frames it already has are skipped,
// so a retried POST is harmless. It answers once the reader has taken
// every frame.
func (s *Server) serveUp(w http.ResponseWriter, r *http.Request) {
	ss := s.session(w, r)
	if ss == nil {
		return
	}
	seq, err := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64)
	if err != nil || seq == 0 {
		http.Error(w, "bad seq", http.StatusBadRequest)
		return
	}
	ss.upMu.Lock()
	defer ss.upMu.Unlock()
	if seq > ss.upNext {
		http.Error(w, fmt.Sprintf("frames missing: want %d, got %d", ss.upNext, seq), http.StatusConflict)
		return
	}
	ss.touch()
	body := http.MaxBytesReader(w, r.Body, protocol.MaxHTTPUpBody)
	for n := seq; ; n++ {
		op, data, err := protocol.ReadHTTPFrame(body)
		if err == io.EOF {
			break
		}
		if err != nil {
			s.upFailed(w, ss, err)
			return
		}
		if n < ss.upNext || op == protocol.HTTPPing || op == protocol.HTTPPong {
			ss.upNext = max(ss.upNext, n+1)
			continue
		}
		select {
		case ss.in <- upFrame{op: op, data: data}:
			ss.upNext = n + 1
		case <-ss.done:
			http.Error(w, "session closed", http.StatusGone)
			return
		case <-r.Context().Done():
			return
		}
	}
	noStore(w)
	w.WriteHeader(http.StatusNoContent)
}

// upFailed answers a POST whose body broke off or broke a limit; a frame
// over the size limit ends the session as it ends a WebSocket (1009).
func (s *Server) upFailed(w http.ResponseWriter, ss *session, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, protocol.ErrHTTPFrameTooLarge):
		ss.fail(websocket.ErrReadLimit)
		http.Error(w, fmt.Sprintf("frame over the size limit (%d bytes): connection closed", protocol.MaxFrameBytes), http.StatusRequestEntityTooLarge)
	case errors.As(err, &mbe):
		http.Error(w, fmt.Sprintf("body over the size limit (%d bytes)", protocol.MaxHTTPUpBody), http.StatusRequestEntityTooLarge)
	case errors.Is(err, protocol.ErrHTTPFrame):
		ss.fail(err)
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		http.Error(w, "body broke off: "+err.Error(), http.StatusBadRequest)
	}
}
