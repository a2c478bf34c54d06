package signaling

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"cloakroom/internal/clientaddr"
	"cloakroom/internal/protocol"
)

// Limit names one limit whose refusals are counted (Stats.Limited, and
// /metrics as cloakroom_limited_total{limit="..."}).
type Limit int

// The counted limits.
const (
	LimitConns         Limit = iota // connections to the server at once (too_many)
	LimitConnsPerAddr               // connections from one address at once (too_many, or HTTP 429)
	LimitJoinRate                   // new connections per second from one address (rate_limited)
	LimitRooms                      // rooms on the server (too_many)
	LimitMembers                    // members in a room (room_full)
	LimitMsgRate                    // control messages per second from one address (rate_limited)
	LimitUploadRate                 // relay upload bytes per second from one address (throttled, not refused)
	LimitFrameSize                  // a frame over the read limit (close 1009)
	LimitRelayFull                  // relay store full past the upload wait (relay_full)
	LimitTooLarge                   // an item larger than a relay cap (too_large)
	LimitSlowClient                 // control-message queue full: cut off
	LimitBadRequests                // too many bad requests: cut off
	LimitJoinTimeout                // no join within the join timeout
	LimitPingTimeout                // nothing (not even a pong) within the ping deadline
	LimitHeaderTimeout              // HTTP connection closed before a whole request arrived
	LimitRoomsPerAddr               // rooms made from one address still on the server (too_many)
	numLimits
)

var limitNames = [numLimits]string{
	"conns", "conns_per_addr", "join_rate", "rooms", "members", "msg_rate",
	"upload_rate", "frame_size", "relay_full", "too_large", "slow_client",
	"bad_requests", "join_timeout", "ping_timeout", "header_timeout", "rooms_per_addr",
}

func (l Limit) String() string { return limitNames[l] }

// counters counts refusals per limit.
type counters [numLimits]atomic.Int64

func (c *counters) add(l Limit) { c[l].Add(1) }

func (c *counters) snapshot() map[string]int64 {
	m := make(map[string]int64, numLimits)
	for i := range c {
		m[limitNames[i]] = c[i].Load()
	}
	return m
}

// maxAddrs bounds the address table: past it, new addresses are refused
// (an attacker with very many addresses meets the global caps anyway).
const maxAddrs = 100_000

// addrState is what the server tracks for one client address.
type addrState struct {
	key     string // clientaddr.Key of the address
	live    int    // admitted WebSocket connections
	rooms   int    // rooms made from this address that are still on the server
	pending int    // upgraded or upgrading, admitted or not (bounds refusals too)
	join    *rate.Limiter
	msgs    *rate.Limiter
	upload  *rate.Limiter
}

// addrTable holds the per-address limits. Entries stay after the last
// connection ends until their buckets are full again, so reconnecting does
// not reset a limit.
type addrTable struct {
	cfg   *Config
	mu    sync.Mutex
	addrs map[string]*addrState
}

func newAddrTable(cfg *Config) *addrTable {
	return &addrTable{cfg: cfg, addrs: make(map[string]*addrState)}
}

func limiter(r float64, burst int) *rate.Limiter {
	if r < 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(r), burst)
}

// uploadLimiter paces the relay uploads from the address key: at
// UploadRateLAN for a loopback, private or link-local address (a LAN
// member, whose uploads the per-address relay quota still bounds), at
// UploadRate for any other.
func uploadLimiter(c *Config, key string) *rate.Limiter {
	if !clientaddr.Local(key) || c.UploadRateLAN == c.UploadRate {
		return limiter(float64(c.UploadRate), int(c.UploadBurst))
	}
	burst := max(defaultUploadBurst, c.UploadRateLAN/8, protocol.MaxFrameBytes)
	return limiter(float64(c.UploadRateLAN), int(burst))
}

// open counts a new connection attempt from key and returns its state, or
// nil when the address already has twice its connection cap open (or the
// table is full): then it gets a plain HTTP refusal, not even an upgrade.
func (t *addrTable) open(key string) *addrState {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.addrs[key]
	if a == nil {
		if len(t.addrs) >= maxAddrs {
			return nil
		}
		c := t.cfg
		a = &addrState{
			key:    key,
			join:   limiter(c.JoinRate, c.JoinBurst),
			msgs:   limiter(c.MsgRate, c.MsgBurst),
			upload: uploadLimiter(c, key),
		}
		t.addrs[key] = a
	}
	if c := t.cfg.MaxConnsPerAddr; c > 0 && a.pending >= 2*c {
		return nil
	}
	a.pending++
	return a
}

// admit decides whether a connection from a (counted by open) may stay.
func (t *addrTable) admit(a *addrState) (Limit, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.cfg.MaxConnsPerAddr; c > 0 && a.live >= c {
		return LimitConnsPerAddr, false
	}
	if !a.join.Allow() {
		return LimitJoinRate, false
	}
	a.live++
	return 0, true
}

// close undoes open (and admit, when the connection was admitted).
func (t *addrTable) close(a *addrState, admitted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a.pending--
	if admitted {
		a.live--
	}
}

// makeRoom counts a room made from a, or reports that a made its share.
func (t *addrTable) makeRoom(a *addrState) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.cfg.MaxRoomsPerAddr; c > 0 && a.rooms >= c {
		return false
	}
	a.rooms++
	return true
}

// roomGone undoes makeRoom when the room is deleted.
func (t *addrTable) roomGone(a *addrState) {
	t.mu.Lock()
	a.rooms--
	t.mu.Unlock()
}

// sweep forgets addresses with nothing open, no rooms, and full buckets.
func (t *addrTable) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, a := range t.addrs {
		if a.pending == 0 && a.rooms == 0 && full(a.join, now) && full(a.msgs, now) && full(a.upload, now) {
			delete(t.addrs, k)
		}
	}
}

func full(l *rate.Limiter, now time.Time) bool {
	return l.Limit() == rate.Inf || l.TokensAt(now) >= float64(l.Burst())
}

func (t *addrTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.addrs)
}

// wait takes n tokens from l, waiting for them at most max (or until the
// connection ends). It reports whether the tokens were taken and whether it
// had to wait.
func (c *conn) wait(l *rate.Limiter, n int, max time.Duration) (ok, waited bool) {
	r := l.ReserveN(time.Now(), n)
	if !r.OK() {
		return false, false
	}
	d := r.Delay()
	switch {
	case d == 0:
		return true, false
	case d > max:
		r.Cancel()
		return false, false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, true
	case <-c.ctx.Done():
		r.Cancel()
		return false, true
	}
}
