package signaling

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

const (
	shutdownWait = 4 * time.Second // how long Run waits for HTTP requests in progress
	sweepEvery   = 5 * time.Second // how often Run sweeps (Sweep)
	// nodeGoneGrace: how long the relay store keeps counting online the
	// members of a node that vanished (see NodeGone).
	nodeGoneGrace = 30 * time.Second
)

// httpServer returns an http.Server for Handler with the configured
// timeouts (ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes) and the
// connection tracking behind Stats.HTTPConns and the header_timeout count.
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           http.HandlerFunc(s.serveTracked),
		ConnContext:       s.http.connContext,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ConnState:         s.connState,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Run serves ln (with TLS when tlsConfig is set) until ctx ends or serving
// fails, sweeping expired state every 5 s; then it closes every WebSocket
// and shuts the HTTP server down.
func (s *Server) Run(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	hs := s.httpServer()
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runCleanup(cctx, sweepEvery)
	}()
	defer wg.Wait()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		_ = s.Close()
		return fmt.Errorf("signaling: serve: %w", err)
	case <-ctx.Done():
	}
	_ = s.Close()
	sctx, scancel := context.WithTimeout(context.Background(), shutdownWait)
	defer scancel()
	err := hs.Shutdown(sctx)
	<-errc
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("signaling: shutdown: %w", err)
	}
	return nil
}

// httpConns tracks HTTP connections that have not become WebSockets, to
// count those closed before sending a whole request (slow or idle
// clients cut by the header timeout).
type httpConns struct {
	mu    sync.Mutex
	conns map[net.Conn]bool // true once a whole request arrived
}

type connKey struct{}

func (h *httpConns) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// serveTracked marks the request's connection as having sent a request.
func (s *Server) serveTracked(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		h := &s.http
		h.mu.Lock()
		if _, open := h.conns[c]; open {
			h.conns[c] = true
		}
		h.mu.Unlock()
	}
	s.handler.ServeHTTP(w, r)
}

func (h *httpConns) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (s *Server) connState(c net.Conn, state http.ConnState) {
	h := &s.http
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns == nil {
		h.conns = make(map[net.Conn]bool)
	}
	switch state {
	case http.StateNew:
		h.conns[c] = false
	case http.StateHijacked:
		delete(h.conns, c)
	case http.StateClosed:
		if requested, ok := h.conns[c]; ok && !requested {
			s.limited.add(LimitHeaderTimeout)
		}
		delete(h.conns, c)
		if f := s.hookHTTPClosed; f != nil {
			f()
		}
	}
}
