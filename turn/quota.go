package turn

import (
	"sync"
	"time"
)

// reserveTTL bounds how long a quota reservation waits for its allocation.
// pion calls the QuotaHandler and, microseconds later in the same goroutine,
// creates the allocation and reports it; a reservation still open after this
// belongs to an allocation that failed (no relay port) and is dropped.
const reserveTTL = 5 * time.Second

// quota caps allocations per user and in total. pion's QuotaHandler runs
// before the allocation exists, and TCP/TLS connections are served in
// parallel, so the handler reserves a slot and the OnAllocationCreated event
// turns the reservation into an allocation: two racing requests cannot both
// take the last slot.
type quota struct {
	perUser, total int

	mu       sync.Mutex
	users    map[string]*usage
	active   int // allocations
	reserved int // reservations, all users
}

type usage struct {
	active   int
	reserved []time.Time // oldest first
}

func newQuota(perUser, total int) *quota {
	return &quota{perUser: perUser, total: total, users: make(map[string]*usage)}
}

// reserve takes a slot for user, or reports that a cap is reached.
func (q *quota) reserve(user string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.users[user]
	if u == nil {
		u = &usage{}
		q.users[user] = u
	}
	q.expire(u, now)
	if q.active+q.reserved >= q.total {
		q.expireAll(now)
	}
	if u.active+len(u.reserved) >= q.perUser || q.active+q.reserved >= q.total {
		q.forget(user, u)
		return false
	}
	u.reserved = append(u.reserved, now)
	q.reserved++
	return true
}

// created turns user's oldest reservation into an allocation.
func (q *quota) created(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.users[user]
	if u == nil { // reservation expired meanwhile: count it anyway
		u = &usage{}
		q.users[user] = u
	}
	if len(u.reserved) > 0 {
		u.reserved = u.reserved[1:]
		q.reserved--
	}
	u.active++
	q.active++
}

// deleted frees one of user's allocations.
func (q *quota) deleted(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.users[user]
	if u == nil || u.active == 0 {
		return
	}
	u.active--
	q.active--
	q.forget(user, u)
}

// allocations returns the number of live allocations.
func (q *quota) allocations() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active
}

func (q *quota) expire(u *usage, now time.Time) {
	n := 0
	for n < len(u.reserved) && now.Sub(u.reserved[n]) > reserveTTL {
		n++
	}
	u.reserved = u.reserved[n:]
	q.reserved -= n
}

func (q *quota) expireAll(now time.Time) {
	for user, u := range q.users {
		q.expire(u, now)
		q.forget(user, u)
	}
}

func (q *quota) forget(user string, u *usage) {
	if u.active == 0 && len(u.reserved) == 0 {
		delete(q.users, user)
	}
}
