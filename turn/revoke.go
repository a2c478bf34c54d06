package turn

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// revocations are the user ids whose credentials no longer count (a member
// who left its room), and the client addresses of their allocations, so
// the gate can stop relaying for them at once: a credential otherwise
// stays valid until its expiry (hours).
type revocations struct {
	mu      sync.Mutex
	users   map[string]time.Time // user id -> when to forget the revocation
	clients map[string]string    // client address (of a live allocation) -> user id
	// active counts live allocations of revoked users: the gate's fast path
	// skips the lookup while it is 0.
	active atomic.Int64
}

func newRevocations() *revocations {
	return &revocations{users: make(map[string]time.Time), clients: make(map[string]string)}
}

// revoke marks user revoked until until (its credentials' longest expiry).
func (r *revocations) revoke(user string, now, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for u, t := range r.users {
		if now.After(t) {
			delete(r.users, u)
		}
	}
	if _, ok := r.users[user]; ok {
		r.users[user] = until
		return
	}
	r.users[user] = until
	for _, u := range r.clients {
		if u == user {
			r.active.Add(1)
		}
	}
}

// isRevoked reports whether user's credentials are revoked.
func (r *revocations) isRevoked(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.users[user]
	return ok
}

// allocated records the client address of user's new allocation.
func (r *revocations) allocated(client net.Addr, user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients[client.String()] = user
	if _, ok := r.users[user]; ok {
		r.active.Add(1)
	}
}

// closed forgets the allocation of client.
func (r *revocations) closed(client net.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := client.String()
	if u, ok := r.clients[k]; ok {
		if _, rev := r.users[u]; rev {
			r.active.Add(-1)
		}
		delete(r.clients, k)
	}
}

// dropFrom reports whether frames from client belong to a revoked user's
// allocation.
func (r *revocations) dropFrom(client net.Addr) bool {
	if r.active.Load() == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.clients[client.String()]
	if !ok {
		return false
	}
	_, rev := r.users[u]
	return rev
}
