package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"cloakroom/internal/protocol"
)

// A chat written on a connection that then broke may be lost with it: the
// server may not have read it (it was still in a socket buffer), or a
// cluster node may have died before it published it to the other nodes
// (docs/SCALING.md). The server confirms nothing, so once a new connection
// is up the client writes again the chats it wrote on the lost one in the
// last resendWindow. Receivers drop a copy they already have by its
// envelope id (markSeen), so each arrives once.
const (
	resendWindow = time.Minute // a cluster node retries an unpublished event for up to a minute
	resendMax    = 256         // chats kept for a resend
)

// sentChat is a chat written on connection gen at time at.
type sentChat struct {
	gen uint64
	at  time.Time
	msg *protocol.Message
}

// resender keeps the chats written lately and owns the goroutine that
// writes them again after a reconnect.
type resender struct {
	mu     sync.Mutex
	sent   []sentChat // oldest first
	cancel context.CancelFunc
	idle   chan struct{} // closed when the goroutine is done; nil: none ran yet
	wg     sync.WaitGroup
}

// noteSent records a chat written on connection gen.
func (r *room) noteSent(gen uint64, at time.Time, msg *protocol.Message) {
	rs := &r.resend
	rs.mu.Lock()
	defer rs.mu.Unlock()
	cut := time.Now().Add(-resendWindow)
	rs.sent = slices.DeleteFunc(rs.sent, func(s sentChat) bool { return s.at.Before(cut) })
	rs.sent = append(rs.sent, sentChat{gen: gen, at: at, msg: msg})
	if n := len(rs.sent) - resendMax; n > 0 {
		rs.sent = slices.Delete(rs.sent, 0, n)
	}
}

// takeSent removes and returns the chats written on connection gen in the
// last resendWindow.
func (r *room) takeSent(gen uint64) []sentChat {
	rs := &r.resend
	rs.mu.Lock()
	defer rs.mu.Unlock()
	cut := time.Now().Add(-resendWindow)
	var out []sentChat
	rs.sent = slices.DeleteFunc(rs.sent, func(s sentChat) bool {
		if s.gen == gen && !s.at.Before(cut) {
			out = append(out, s)
			return true
		}
		return s.at.Before(cut)
	})
	return out
}

// startResend writes again, on the new connection, the chats written on
// connection lost (in a goroutine that stopResend ends). run calls it.
func (r *room) startResend(lost uint64) {
	r.stopResend()
	pending := r.takeSent(lost)
	if len(pending) == 0 {
		return
	}
	rs := &r.resend
	ctx, cancel := context.WithCancel(r.ctx)
	idle := make(chan struct{})
	rs.mu.Lock()
	rs.cancel, rs.idle = cancel, idle
	rs.mu.Unlock()
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		defer close(idle)
		r.resendChats(ctx, pending)
	}()
}

// waitResent waits until the chats being written again are written: a new
// chat goes after them, so they keep their order.
func (r *room) waitResent(ctx context.Context) error {
	r.resend.mu.Lock()
	idle := r.resend.idle
	r.resend.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chat: %w", ctx.Err())
	case <-r.done:
		return fmt.Errorf("chat: client closed: %w", ErrClosed)
	}
}

// stopResend ends the resend goroutine and waits for it; what it had not
// written is noted again under the connection it was to go on.
func (r *room) stopResend() {
	rs := &r.resend
	rs.mu.Lock()
	cancel := rs.cancel
	rs.cancel = nil
	rs.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	rs.wg.Wait()
}

// resendChats waits, as a new chat does, for the members online before the
// break to be back (a restarted server owes a chat only to the members it
// knows), then writes pending again, in order.
func (r *room) resendChats(ctx context.Context, pending []sentChat) {
	err := r.waitRejoined(ctx)
	written := 0
	for _, s := range pending {
		gen := r.connGeneration()
		if err == nil && ctx.Err() == nil {
			err = r.writeJSON(s.msg)
		}
		if err == nil {
			written++
		}
		// Also when not written: the next connection tries it again.
		r.noteSent(gen, s.at, s.msg)
	}
	r.log.Info("chat written again after a reconnect", "messages", written, "of", len(pending))
}
