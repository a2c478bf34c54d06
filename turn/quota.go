package turn

import (
	"net"
	"sync"
	"time"

	"cloakroom/internal/clientaddr"
)

// reserveTTL bounds how long a quota reservation waits for its allocation.
// pion calls the QuotaHandler and, microseconds later in the same goroutine,
// creates the allocation and reports it; a reservation still open after this
// belongs to an allocation that failed (no relay port) and is dropped.
const reserveTTL = 5 * time.Second

// quota caps allocations per user id, per client address and in total.
// pion's QuotaHandler runs before the allocation exists, and TCP/TLS
// connections are served in parallel, so the handler reserves a slot and
// the OnAllocationCreated event turns the reservation into an allocation:
// two racing requests cannot both take the last slot.
//
// The user id is the id part of a TURN REST username, which the signaling
// server chooses per member; the address cap stops one host from holding
// every allocation with many credentials.
type quota struct {
	total int

	mu       sync.Mutex
	users    buckets
	addrs    buckets
	active   int // allocations
	reserved int // reservations, counted once each (by user)
}

// buckets counts allocations and reservations per key, up to limit each.
type buckets struct {
	limit int
	m     map[string]*usage
}

type usage struct {
	active   int
	reserved []time.Time // oldest first
}

func newQuota(perUser, perAddr, total int) *quota {
	return &quota{
		total: total,
		users: buckets{limit: perUser, m: make(map[string]*usage)},
		addrs: buckets{limit: perAddr, m: make(map[string]*usage)},
	}
}

// addrKey is the key a client address is counted under
// (clientaddr.Key: an IPv4 address or an IPv6 /64), as signaling counts it.
func addrKey(a net.Addr) string { return clientaddr.Key(a.String()) }

// reserve takes a slot for user at addr, or reports that a cap is reached.
func (q *quota) reserve(user, addr string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	u, a := q.users.get(user), q.addrs.get(addr)
	q.reserved -= u.expire(now) // q.reserved counts each reservation once, by user
	a.expire(now)
	if q.active+q.reserved >= q.total {
		q.expireAll(now)
	}
	if u.full(q.users.limit) || a.full(q.addrs.limit) || q.active+q.reserved >= q.total {
		q.users.forget(user, u)
		q.addrs.forget(addr, a)
		return false
	}
	u.reserved = append(u.reserved, now)
	a.reserved = append(a.reserved, now)
	q.reserved++
	return true
}

// created turns the oldest reservation of user and of addr into an
// allocation.
func (q *quota) created(user, addr string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.users.get(user).take() {
		q.reserved--
	}
	q.addrs.get(addr).take()
	q.active++
}

// deleted frees one of user's allocations.
func (q *quota) deleted(user, addr string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.users.release(user) {
		q.active--
	}
	q.addrs.release(addr)
}

// allocations returns the number of live allocations.
func (q *quota) allocations() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active
}

func (q *quota) expireAll(now time.Time) {
	for key, u := range q.users.m {
		q.reserved -= u.expire(now)
		q.users.forget(key, u)
	}
	for key, a := range q.addrs.m {
		a.expire(now)
		q.addrs.forget(key, a)
	}
}

func (b *buckets) get(key string) *usage {
	u := b.m[key]
	if u == nil { // new, or its reservation expired meanwhile
		u = &usage{}
		b.m[key] = u
	}
	return u
}

// release frees one allocation of key; false if it had none.
func (b *buckets) release(key string) bool {
	u := b.m[key]
	if u == nil || u.active == 0 {
		return false
	}
	u.active--
	b.forget(key, u)
	return true
}

func (b *buckets) forget(key string, u *usage) {
	if u.active == 0 && len(u.reserved) == 0 {
		delete(b.m, key)
	}
}

func (u *usage) full(limit int) bool { return u.active+len(u.reserved) >= limit }

// take turns the oldest reservation into an allocation; it reports whether
// there was one (an expired reservation is counted anyway).
func (u *usage) take() bool {
	u.active++
	if len(u.reserved) == 0 {
		return false
	}
	u.reserved = u.reserved[1:]
	return true
}

// expire drops reservations older than reserveTTL and returns how many.
func (u *usage) expire(now time.Time) int {
	n := 0
	for n < len(u.reserved) && now.Sub(u.reserved[n]) > reserveTTL {
		n++
	}
	u.reserved = u.reserved[n:]
	return n
}
