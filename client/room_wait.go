package client

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// rejoinGrace bounds how long, after a reconnect, a chat waits for the
// members online before the break to be back in the room.
const rejoinGrace = 10 * time.Second

// waitRejoined blocks, for at most rejoinGrace after a reconnect, until the
// members that were online before the connection broke are online again:
// a message queued during a server restart then reaches them too.
func (r *room) waitRejoined(ctx context.Context) error {
	r.mu.Lock()
	ids, by := slices.Clone(r.awaitBack), r.backBy
	r.mu.Unlock()
	return r.await(ctx, by, func() bool { return len(r.offline(ids)) == 0 })
}

// offline returns the members of ids not online now.
func (r *room) offline(ids []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range ids {
		if m := r.members[id]; m == nil || !m.Online {
			out = append(out, id)
		}
	}
	return out
}

// await blocks until ok holds, until (if not zero) passes, ctx ends or the
// room closes. It wakes on every change of the connection or the members,
// never on a timer: ok is checked after taking the current changed channel,
// so a change that races with the check still wakes it.
func (r *room) await(ctx context.Context, until time.Time, ok func() bool) error {
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if ok() {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return fmt.Errorf("client closed: %w", ErrClosed)
		}
	}
}

// waitConnected blocks until a connection is up.
func (r *room) waitConnected(ctx context.Context) error {
	return r.await(ctx, time.Time{}, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.conn != nil
	})
}

// connGeneration counts the connections made so far.
func (r *room) connGeneration() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connGen
}

// waitNewConn blocks until a connection newer than generation gen is up: a
// write may fail before the read loop has noticed the old one broke.
func (r *room) waitNewConn(ctx context.Context, gen uint64) error {
	return r.await(ctx, time.Time{}, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.connGen != gen && r.conn != nil
	})
}
