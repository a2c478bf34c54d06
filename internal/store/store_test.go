package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable clock; each Now call is also signalled on calls
// (if set, without blocking) so tests can tell that Expire ran.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	calls chan struct{}
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	t := c.t
	c.mu.Unlock()
	if c.calls != nil {
		select {
		case c.calls <- struct{}{}:
		default:
		}
	}
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// evictLog records OnEvict calls.
type evictLog struct {
	mu  sync.Mutex
	got []string // "id:m1,m2"
}

func (l *evictLog) record(it Item, members []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if it.Data != nil {
		panic("OnEvict got Data")
	}
	l.got = append(l.got, fmt.Sprintf("%d:%v", it.ID, members))
}

func (l *evictLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// harness is a store with a fake clock, an eviction log and a wait hook.
type harness struct {
	*Store
	clock   *fakeClock
	evicted *evictLog
	waiting chan struct{} // one value each time a Put blocks
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{clock: newClock(), evicted: &evictLog{}, waiting: make(chan struct{}, 64)}
	cfg.Now = h.clock.Now
	cfg.OnEvict = h.evicted.record
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.waitHook = func() { h.waiting <- struct{}{} }
	h.Store = s
	t.Cleanup(s.Close)
	return h
}

func data(n int) []byte { return make([]byte, n) }

// chunk and envelope make items of a sender of their own each: the caps
// these tests check are the global and room ones (quota_test.go checks the
// per-sender and per-origin quotas).
func chunk(room string, n int) Item {
	return Item{Room: room, Sender: nextSender(), Kind: KindChunk, File: "f", Data: data(n)}
}

func envelope(room string, n int) Item {
	return Item{Room: room, Sender: nextSender(), Kind: KindEnvelope, Data: data(n)}
}

var senders atomic.Int64

func nextSender() string { return fmt.Sprintf("snd%d", senders.Add(1)) }

// mustPut stores it and fails the test if Put would have to wait.
func (h *harness) mustPut(t testing.TB, it Item, owed ...string) uint64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a Put that has room never looks at ctx
	id, err := h.Put(ctx, it, owed)
	if err != nil {
		t.Fatalf("Put(%s, %d bytes, %v): %v", it.Room, len(it.Data), owed, err)
	}
	return id
}

type putResult struct {
	id  uint64
	err error
}

// startPut runs Put in a goroutine and waits until it blocks for space.
func (h *harness) startPut(t testing.TB, ctx context.Context, it Item, owed ...string) <-chan putResult {
	t.Helper()
	res := make(chan putResult, 1)
	go func() {
		id, err := h.Put(ctx, it, owed)
		res <- putResult{id, err}
	}()
	select {
	case <-h.waiting:
	case r := <-res:
		t.Fatalf("Put returned (%d, %v) instead of blocking", r.id, r.err)
	}
	expectBlocked(t, res)
	return res
}

func expectBlocked(t testing.TB, res <-chan putResult) {
	t.Helper()
	select {
	case r := <-res:
		t.Fatalf("Put returned (%d, %v) while it should wait", r.id, r.err)
	default:
	}
}

// reblocked waits until a woken Put blocked again (the freed space was not
// enough) and checks it has not returned.
func (h *harness) reblocked(t testing.TB, res <-chan putResult) {
	t.Helper()
	select {
	case <-h.waiting:
	case r := <-res:
		t.Fatalf("Put returned (%d, %v) while it should wait", r.id, r.err)
	}
	expectBlocked(t, res)
}

func wantStats(t testing.TB, got, want Stats) {
	t.Helper()
	if got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name              string
		cfg               Config
		wantErr           bool
		wantMax, wantRoom int64
		wantTTL           time.Duration
	}{
		{name: "defaults", wantMax: 256 << 20, wantRoom: 128 << 20, wantTTL: 10 * time.Minute},
		{name: "room default is half", cfg: Config{MaxBytes: 1000}, wantMax: 1000, wantRoom: 500, wantTTL: 10 * time.Minute},
		{name: "room capped at total", cfg: Config{MaxBytes: 1000, MaxRoomBytes: 5000, TTL: time.Second}, wantMax: 1000, wantRoom: 1000, wantTTL: time.Second},
		{name: "tiny total", cfg: Config{MaxBytes: 1}, wantMax: 1, wantRoom: 1, wantTTL: 10 * time.Minute},
		{name: "negative MaxBytes", cfg: Config{MaxBytes: -1}, wantErr: true},
		{name: "negative MaxRoomBytes", cfg: Config{MaxRoomBytes: -1}, wantErr: true},
		{name: "negative TTL", cfg: Config{TTL: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("New succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.maxBytes != tt.wantMax || s.maxRoom != tt.wantRoom || s.ttl != tt.wantTTL || s.now == nil {
				t.Fatalf("got max %d room %d ttl %v, want %d %d %v", s.maxBytes, s.maxRoom, s.ttl, tt.wantMax, tt.wantRoom, tt.wantTTL)
			}
			wantStats(t, s.Stats(), Stats{})
			c := tt.cfg // Fill reports the values New uses
			if err := c.Fill(); err != nil || c.MaxBytes != tt.wantMax || c.MaxRoomBytes != tt.wantRoom || c.TTL != tt.wantTTL {
				t.Fatalf("Fill: %v, %+v", err, c)
			}
		})
	}
}

func TestPutAndAck(t *testing.T) {
	type ack struct {
		room, member string
		id           uint64 // 0: the stored item
		wantErr      error
		want         Stats // after this ack
	}
	tests := []struct {
		name string
		owed []string
		acks []ack
	}{
		{
			name: "deleted after all acks",
			owed: []string{"a", "b", "c"},
			acks: []ack{
				{member: "a", want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "c", want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "b", want: Stats{}},
			},
		},
		{
			name: "duplicate ack",
			owed: []string{"a", "b"},
			acks: []ack{
				{member: "a", want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "a", wantErr: ErrNotOwed, want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "b", want: Stats{}},
				{member: "b", wantErr: ErrNotOwed, want: Stats{}},
			},
		},
		{
			name: "ack by member not owed",
			owed: []string{"a"},
			acks: []ack{
				{member: "x", wantErr: ErrNotOwed, want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "a", want: Stats{}},
			},
		},
		{
			name: "unknown id and wrong room",
			owed: []string{"a"},
			acks: []ack{
				{member: "a", id: 999, wantErr: ErrNotOwed, want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{room: "other", member: "a", wantErr: ErrNotOwed, want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "a", want: Stats{}},
			},
		},
		{
			name: "owed list deduplicated",
			owed: []string{"a", "a", "b", "a"},
			acks: []ack{
				{member: "a", want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "a", wantErr: ErrNotOwed, want: Stats{Bytes: 100, Items: 1, Rooms: 1}},
				{member: "b", want: Stats{}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{MaxBytes: 1000})
			owed := slices.Clone(tt.owed)
			id := h.mustPut(t, envelope("r", 100), owed...)
			if id == 0 {
				t.Fatal("id 0 for a stored item")
			}
			owed[0] = "mutated" // the store keeps its own copy
			for i, a := range tt.acks {
				room, aid := a.room, a.id
				if room == "" {
					room = "r"
				}
				if aid == 0 {
					aid = id
				}
				it, err := h.Ack(room, a.member, aid)
				if !errors.Is(err, a.wantErr) || (a.wantErr == nil) != (err == nil) {
					t.Fatalf("ack %d (%s): err %v, want %v", i, a.member, err, a.wantErr)
				}
				if err == nil && (it.ID != id || it.Room != "r" || it.Kind != KindEnvelope || !strings.HasPrefix(it.Sender, "snd")) {
					t.Fatalf("ack %d returned %+v", i, it)
				}
				wantStats(t, h.Stats(), a.want)
				wantStats(t, h.RoomStats("r"), a.want)
			}
			h.mu.RLock()
			defer h.mu.RUnlock()
			if len(h.rooms) != 0 {
				t.Fatalf("rooms left behind: %d", len(h.rooms))
			}
		})
	}
}

func TestPutOwedToNobody(t *testing.T) {
	for _, owed := range [][]string{nil, {}} {
		h := newHarness(t, Config{MaxBytes: 10})
		id, err := h.Put(context.Background(), envelope("r", 1000), owed)
		if id != 0 || err != nil {
			t.Fatalf("Put owed to %v = (%d, %v), want (0, nil)", owed, id, err)
		}
		wantStats(t, h.Stats(), Stats{})
	}
}

func TestIDsIncreaseAcrossRooms(t *testing.T) {
	h := newHarness(t, Config{})
	var last uint64
	for i := range 10 {
		id := h.mustPut(t, envelope(fmt.Sprint("r", i%3), 1), "a")
		if id <= last {
			t.Fatalf("id %d after %d", id, last)
		}
		last = id
	}
	if last != 10 {
		t.Fatalf("last id %d, want 10 (ids start at 1)", last)
	}
}

func TestExpire(t *testing.T) {
	const ttl = 10 * time.Minute
	h := newHarness(t, Config{MaxBytes: 1000, TTL: ttl})
	first := h.mustPut(t, envelope("r1", 10), "a")
	h.clock.Advance(time.Minute)
	second := h.mustPut(t, chunk("r2", 20), "a", "b")

	it, ok := h.Next("r1", "a", 0)
	if !ok || !it.Expires.Equal(h.clock.Now().Add(ttl-time.Minute)) {
		t.Fatalf("Next = %+v, %v; want Expires = put time + TTL", it, ok)
	}

	steps := []struct {
		advance time.Duration
		want    int
		stats   Stats
	}{
		{0, 0, Stats{Bytes: 30, Items: 2, Rooms: 2}},
		{ttl - time.Minute - time.Nanosecond, 0, Stats{Bytes: 30, Items: 2, Rooms: 2}},
		{time.Nanosecond, 1, Stats{Bytes: 20, Items: 1, Rooms: 1}}, // Expires <= Now
		{time.Minute - time.Nanosecond, 0, Stats{Bytes: 20, Items: 1, Rooms: 1}},
		{time.Nanosecond, 1, Stats{}},
		{time.Hour, 0, Stats{}},
	}
	for i, st := range steps {
		h.clock.Advance(st.advance)
		if n := h.Expire(); n != st.want {
			t.Fatalf("step %d: Expire = %d, want %d", i, n, st.want)
		}
		wantStats(t, h.Stats(), st.stats)
	}
	for _, id := range []uint64{first, second} {
		if _, err := h.Ack("r2", "a", id); !errors.Is(err, ErrNotOwed) {
			t.Fatalf("ack of expired item %d: %v, want ErrNotOwed", id, err)
		}
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.rooms) != 0 {
		t.Fatalf("rooms left behind: %d", len(h.rooms))
	}
}

func TestRunCleanup(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 1000, TTL: time.Minute})
	h.mustPut(t, envelope("r", 10), "a")
	h.mustPut(t, chunk("r", 10), "a")
	h.clock.Advance(time.Minute)
	h.clock.calls = make(chan struct{}) // unbuffered: one value per Expire

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.RunCleanup(ctx, time.Millisecond)
		close(done)
	}()
	// The second Expire starts only after the first has finished.
	<-h.clock.calls
	<-h.clock.calls
	wantStats(t, h.Stats(), Stats{})
	cancel()
	<-done

	// Close also stops it.
	done = make(chan struct{})
	go func() {
		h.RunCleanup(context.Background(), time.Hour)
		close(done)
	}()
	h.Close()
	<-done
}

func TestCapsBlockUntilSpace(t *testing.T) {
	type stored struct {
		room string
		size int
	}
	tests := []struct {
		name   string
		cfg    Config
		fill   []stored // owed to "a", put in order
		put    stored
		acks   []int // indexes into fill acked by "a"; the Put must still wait before the last
		free   func(h *harness)
		roomOK string // a room whose Put of okSize must not wait meanwhile
		okSize int
	}{
		{
			name: "global cap, freed by ack",
			cfg:  Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill: []stored{{"a", 40}, {"b", 40}},
			put:  stored{"c", 50},
			acks: []int{0},
		},
		{
			name: "global cap, one ack not enough",
			cfg:  Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill: []stored{{"a", 30}, {"b", 30}, {"b", 30}},
			put:  stored{"c", 50},
			acks: []int{1, 0},
		},
		{
			name:   "room cap, other room unaffected",
			cfg:    Config{MaxBytes: 1000, MaxRoomBytes: 100},
			fill:   []stored{{"a", 60}, {"a", 30}},
			put:    stored{"a", 50},
			acks:   []int{1, 0},
			roomOK: "b", okSize: 100,
		},
		{
			name: "room cap, freed by expiry",
			cfg:  Config{MaxBytes: 1000, MaxRoomBytes: 100, TTL: time.Minute},
			fill: []stored{{"a", 60}},
			put:  stored{"a", 50},
			free: func(h *harness) { h.clock.Advance(time.Minute); h.Expire() },
		},
		{
			name: "global cap, freed by DropMember",
			cfg:  Config{MaxBytes: 100},
			fill: []stored{{"a", 50}, {"b", 50}},
			put:  stored{"c", 50},
			free: func(h *harness) { h.DropMember("b", "a") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			ids := make([]uint64, len(tt.fill))
			for i, f := range tt.fill {
				ids[i] = h.mustPut(t, chunk(f.room, f.size), "a")
			}
			before := h.Stats()
			res := h.startPut(t, context.Background(), envelope(tt.put.room, tt.put.size), "x")
			if tt.roomOK != "" {
				h.mustPut(t, envelope(tt.roomOK, tt.okSize), "x")
				expectBlocked(t, res)
				before = h.Stats()
			}
			for i, fi := range tt.acks {
				if _, err := h.Ack(tt.fill[fi].room, "a", ids[fi]); err != nil {
					t.Fatal(err)
				}
				if i < len(tt.acks)-1 {
					h.reblocked(t, res)
				}
			}
			if tt.free != nil {
				tt.free(h)
			}
			r := <-res
			if r.err != nil || r.id == 0 {
				t.Fatalf("Put after freeing = (%d, %v)", r.id, r.err)
			}
			st := h.Stats()
			if st.Bytes > tt.cfg.MaxBytes || h.RoomStats(tt.put.room).Bytes > h.maxRoom {
				t.Fatalf("caps exceeded: %+v", st)
			}
			if rs := h.RoomStats(tt.put.room); rs.Bytes < int64(tt.put.size) || st.Bytes+int64(tt.put.size) < before.Bytes {
				t.Fatalf("stats before %+v, after %+v, room %+v", before, st, rs)
			}
			if it, ok := h.Next(tt.put.room, "x", r.id-1); !ok || it.ID != r.id {
				t.Fatalf("Next after blocked Put = %+v, %v", it, ok)
			}
		})
	}
}

func TestPutContextEnds(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		cancel  bool // cancel after the Put blocked
		wantCtx error
	}{
		{"cancelled while waiting", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, true, context.Canceled},
		{"already cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, false, context.Canceled},
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Unix(0, 0))
		}, false, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{MaxBytes: 100})
			h.mustPut(t, envelope("a", 50), "a")
			ctx, cancel := tt.ctx()
			defer cancel()
			var err error
			if tt.cancel {
				res := h.startPut(t, ctx, envelope("a", 1), "x")
				cancel()
				err = (<-res).err
			} else {
				_, err = h.Put(ctx, envelope("a", 1), []string{"x"})
			}
			if !errors.Is(err, ErrFull) || !errors.Is(err, tt.wantCtx) {
				t.Fatalf("err = %v, want ErrFull and %v", err, tt.wantCtx)
			}
			wantStats(t, h.Stats(), Stats{Bytes: 50, Items: 1, Rooms: 1})
		})
	}
}

func TestTooLarge(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		size int
	}{
		{"over room cap", Config{MaxBytes: 1000, MaxRoomBytes: 100}, 101},
		{"over global cap", Config{MaxBytes: 100, MaxRoomBytes: 100}, 101},
		{"over default room cap", Config{MaxBytes: 100}, 51},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			_, err := h.Put(context.Background(), envelope("r", tt.size), []string{"a"})
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			// exactly the cap fits
			h.mustPut(t, envelope("r", int(h.maxRoom)), "a")
		})
	}
}

func TestClose(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 100, MaxRoomBytes: 100})
	h.mustPut(t, envelope("r", 100), "a")
	res1 := h.startPut(t, context.Background(), envelope("r", 10), "a")
	res2 := h.startPut(t, context.Background(), envelope("s", 10), "a")
	h.Close()
	h.Close() // idempotent
	for _, res := range []<-chan putResult{res1, res2} {
		if r := <-res; !errors.Is(r.err, ErrClosed) {
			t.Fatalf("waiting Put after Close: %v, want ErrClosed", r.err)
		}
	}
	if _, err := h.Put(context.Background(), envelope("t", 1), []string{"a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
}

// TestManyWaiters checks that every waiting Put makes progress as space
// appears, and that no goroutine outlives them.
func TestManyWaiters(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHarness(t, Config{MaxBytes: 100, MaxRoomBytes: 100})
	const n = 8
	ids := make([]uint64, 10)
	for i := range ids {
		ids[i] = h.mustPut(t, envelope("full", 10), "a")
	}
	results := make([]<-chan putResult, n)
	for i := range results {
		results[i] = h.startPut(t, context.Background(), envelope(fmt.Sprint("w", i), 10), "x")
	}
	// Drain the hook signals of Puts woken by an ack but not served: each
	// ack frees room for exactly one of them.
	go func() {
		for range h.waiting {
		}
	}()
	for i := range n {
		if _, err := h.Ack("full", "a", ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]bool{}
	for i, res := range results {
		r := <-res
		if r.err != nil || seen[r.id] {
			t.Fatalf("waiter %d: (%d, %v)", i, r.id, r.err)
		}
		seen[r.id] = true
	}
	wantStats(t, h.Stats(), Stats{Bytes: 100, Items: 10, Rooms: n + 1})
	h.Close()
	close(h.waiting)
	// Finished goroutines may take a moment to exit: yield (never sleep)
	// until they have, with a generous deadline.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; runtime.Gosched() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf)
		}
	}
}

func TestEviction(t *testing.T) {
	type stored struct {
		room    string
		kind    Kind
		size    int
		owed    []string
		offline []string // marked offline after the put
	}
	tests := []struct {
		name        string
		cfg         Config
		fill        []stored
		putRoom     string
		putSize     int
		wantEvicted []int                                // indexes into fill, in report order
		evictedTo   [][]string                           // members reported per eviction
		blocks      bool                                 // Put must wait (no eviction possible)
		thenFree    func(testing.TB, *harness, []uint64) // while blocked; Put must then succeed
		thenEvicted []int
	}{
		{
			name:        "offline-only chunk evicted",
			cfg:         Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill:        []stored{{"r", KindChunk, 60, []string{"a", "b"}, []string{"a", "b"}}},
			putRoom:     "r",
			putSize:     50,
			wantEvicted: []int{0},
			evictedTo:   [][]string{{"a", "b"}},
		},
		{
			name: "oldest first, only as much as needed",
			cfg:  Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill: []stored{
				{"r", KindChunk, 30, []string{"a"}, []string{"a"}},
				{"s", KindChunk, 30, []string{"b"}, []string{"b"}},
				{"r", KindChunk, 30, []string{"a"}, nil},
			},
			putRoom:     "t",
			putSize:     50,
			wantEvicted: []int{0, 1},
			evictedTo:   [][]string{{"a"}, {"b"}},
		},
		{
			name: "room cap evicts only from that room",
			cfg:  Config{MaxBytes: 1000, MaxRoomBytes: 100},
			fill: []stored{
				{"s", KindChunk, 30, []string{"b"}, []string{"b"}},
				{"r", KindChunk, 30, []string{"x"}, nil},
				{"r", KindChunk, 40, []string{"a"}, []string{"a"}},
				{"r", KindChunk, 30, []string{"x"}, nil},
			},
			putRoom:     "r",
			putSize:     30,
			wantEvicted: []int{2},
			evictedTo:   [][]string{{"a"}},
		},
		{
			name:    "envelopes never evicted",
			cfg:     Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill:    []stored{{"r", KindEnvelope, 60, []string{"a"}, []string{"a"}}},
			putRoom: "r",
			putSize: 50,
			blocks:  true,
		},
		{
			name:    "member never marked is online",
			cfg:     Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill:    []stored{{"r", KindChunk, 60, []string{"a", "z"}, []string{"a"}}},
			putRoom: "r",
			putSize: 50,
			blocks:  true,
		},
		{
			name: "partial eviction does not happen",
			cfg:  Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill: []stored{
				{"r", KindChunk, 30, []string{"a"}, []string{"a"}},
				{"r", KindEnvelope, 60, []string{"a"}, nil},
			},
			putRoom: "r",
			putSize: 50,
			blocks:  true,
		},
		{
			name:    "offline and online member: evicted once the online one acks",
			cfg:     Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill:    []stored{{"r", KindChunk, 60, []string{"off", "on"}, []string{"off"}}},
			putRoom: "r",
			putSize: 50,
			blocks:  true,
			thenFree: func(t testing.TB, h *harness, ids []uint64) {
				if _, err := h.Ack("r", "on", ids[0]); err != nil {
					t.Fatal(err)
				}
			},
			thenEvicted: []int{0},
			evictedTo:   [][]string{{"off"}},
		},
		{
			name:    "member going offline while a Put waits",
			cfg:     Config{MaxBytes: 100, MaxRoomBytes: 100},
			fill:    []stored{{"r", KindChunk, 60, []string{"a"}, nil}},
			putRoom: "s",
			putSize: 50,
			blocks:  true,
			thenFree: func(t testing.TB, h *harness, ids []uint64) {
				h.SetOnline("r", "a", false)
			},
			thenEvicted: []int{0},
			evictedTo:   [][]string{{"a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			ids := make([]uint64, len(tt.fill))
			for i, f := range tt.fill {
				ids[i] = h.mustPut(t, Item{Room: f.room, Kind: f.kind, Data: data(f.size)}, f.owed...)
				for _, m := range f.offline {
					h.SetOnline(f.room, m, false)
				}
			}
			want := func(idx []int) []string {
				var w []string
				for i, fi := range idx {
					w = append(w, fmt.Sprintf("%d:%v", ids[fi], tt.evictedTo[i]))
				}
				return w
			}
			put := envelope(tt.putRoom, tt.putSize)
			if !tt.blocks {
				h.mustPut(t, put, "x")
				if got, w := h.evicted.list(), want(tt.wantEvicted); !slices.Equal(got, w) {
					t.Fatalf("evicted %v, want %v", got, w)
				}
				for _, fi := range tt.wantEvicted {
					if it, ok := h.Next(tt.fill[fi].room, tt.fill[fi].owed[0], ids[fi]-1); ok && it.ID == ids[fi] {
						t.Fatalf("evicted item %d still delivered", ids[fi])
					}
					for _, m := range tt.fill[fi].owed {
						if _, err := h.Ack(tt.fill[fi].room, m, ids[fi]); !errors.Is(err, ErrNotOwed) {
							t.Fatalf("evicted item %d still ackable by %s: %v", ids[fi], m, err)
						}
					}
				}
				return
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := h.startPut(t, ctx, put, "x")
			if got := h.evicted.list(); len(got) != 0 {
				t.Fatalf("evicted %v while the Put had to wait anyway", got)
			}
			if tt.thenFree == nil {
				cancel()
				if r := <-res; !errors.Is(r.err, ErrFull) {
					t.Fatalf("Put: %v, want ErrFull", r.err)
				}
				if got := h.evicted.list(); len(got) != 0 {
					t.Fatalf("evicted %v", got)
				}
				var total int64
				for _, f := range tt.fill {
					total += int64(f.size)
				}
				wantStats(t, Stats{Bytes: h.Stats().Bytes}, Stats{Bytes: total})
				return
			}
			tt.thenFree(t, h, ids)
			if r := <-res; r.err != nil {
				t.Fatalf("Put: %v", r.err)
			}
			if got, w := h.evicted.list(), want(tt.thenEvicted); !slices.Equal(got, w) {
				t.Fatalf("evicted %v, want %v", got, w)
			}
		})
	}
}

func TestEvictionAfterBackOnline(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 100, MaxRoomBytes: 100})
	h.mustPut(t, chunk("r", 60), "a")
	h.SetOnline("r", "a", false)
	h.SetOnline("r", "a", true)
	_, err := h.Put(canceled(), envelope("r", 50), []string{"x"})
	if !errors.Is(err, ErrFull) || len(h.evicted.list()) != 0 {
		t.Fatalf("Put = %v, evicted %v; want ErrFull and no eviction", err, h.evicted.list())
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestNext(t *testing.T) {
	h := newHarness(t, Config{})
	ids := []uint64{
		h.mustPut(t, envelope("r", 1), "a", "b"),
		h.mustPut(t, chunk("r", 2), "b"),
		h.mustPut(t, envelope("other", 3), "a", "b"),
		h.mustPut(t, chunk("r", 3), "a"),
		h.mustPut(t, envelope("r", 4), "b", "c"),
	}
	tests := []struct {
		member string
		after  uint64
		want   uint64 // 0: none
	}{
		{"a", 0, ids[0]},
		{"a", ids[0], ids[3]},
		{"a", ids[3], 0},
		{"b", 0, ids[0]},
		{"b", ids[0], ids[1]},
		{"b", ids[1], ids[4]},
		{"b", ids[2], ids[4]},
		{"c", 0, ids[4]},
		{"d", 0, 0},
		{"a", ^uint64(0), 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s after %d", tt.member, tt.after), func(t *testing.T) {
			it, ok := h.Next("r", tt.member, tt.after)
			if ok != (tt.want != 0) || it.ID != tt.want {
				t.Fatalf("Next = %d, %v; want %d", it.ID, ok, tt.want)
			}
			if ok && (it.Room != "r" || len(it.Data) == 0) {
				t.Fatalf("Next = %+v", it)
			}
		})
	}
	if _, ok := h.Next("nope", "a", 0); ok {
		t.Fatal("Next in unknown room")
	}
	// Acks filter: a acks ids[0], then its next from 0 is ids[3].
	if _, err := h.Ack("r", "a", ids[0]); err != nil {
		t.Fatal(err)
	}
	if it, _ := h.Next("r", "a", 0); it.ID != ids[3] {
		t.Fatalf("after ack Next = %d, want %d", it.ID, ids[3])
	}
	if it, _ := h.Next("r", "b", 0); it.ID != ids[0] {
		t.Fatalf("b's Next = %d, want %d", it.ID, ids[0])
	}
	if n, b := h.Owed("r", "b"); n != 3 || b != 1+2+4 {
		t.Fatalf("Owed(b) = %d, %d", n, b)
	}
	if n, b := h.Owed("r", "a"); n != 1 || b != 3 {
		t.Fatalf("Owed(a) = %d, %d", n, b)
	}
	if n, b := h.Owed("zz", "a"); n != 0 || b != 0 {
		t.Fatalf("Owed in unknown room = %d, %d", n, b)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestChanged(t *testing.T) {
	h := newHarness(t, Config{})
	ch := h.Changed("r")
	if ch2 := h.Changed("r"); ch2 != ch {
		t.Fatal("two Changed calls without a Put gave different channels")
	}
	if closed(ch) {
		t.Fatal("closed before any Put")
	}
	h.mustPut(t, envelope("other", 1), "a")
	h.SetOnline("r", "a", true)
	if closed(ch) {
		t.Fatal("closed by a Put to another room")
	}
	if _, err := h.Put(context.Background(), envelope("r", 1), nil); err != nil || closed(ch) {
		t.Fatalf("closed by a Put owed to nobody (err %v)", err)
	}
	id := h.mustPut(t, envelope("r", 1), "a")
	if !closed(ch) {
		t.Fatal("not closed by a Put to the room")
	}
	ch = h.Changed("r")
	if closed(ch) {
		t.Fatal("new channel already closed")
	}
	if _, err := h.Ack("r", "a", id); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("closed by an ack (room still has online state)")
	}
	h.mustPut(t, chunk("r", 1), "a")
	if !closed(ch) {
		t.Fatal("second channel not closed by a Put")
	}
}

func TestDropMember(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 100, MaxRoomBytes: 100})
	both := h.mustPut(t, envelope("r", 10), "a", "b")
	onlyA := h.mustPut(t, chunk("r", 20), "a")
	other := h.mustPut(t, envelope("s", 30), "a")
	h.SetOnline("r", "a", false)
	h.SetOnline("r", "b", true)

	h.DropMember("r", "a")
	wantStats(t, h.Stats(), Stats{Bytes: 40, Items: 2, Rooms: 2})
	if n, _ := h.Owed("r", "a"); n != 0 {
		t.Fatalf("still owed %d items to dropped member", n)
	}
	if n, b := h.Owed("s", "a"); n != 1 || b != 30 {
		t.Fatalf("other room changed: %d, %d", n, b)
	}
	if _, err := h.Ack("r", "a", both); !errors.Is(err, ErrNotOwed) {
		t.Fatalf("ack by dropped member: %v", err)
	}
	if _, err := h.Ack("r", "a", onlyA); !errors.Is(err, ErrNotOwed) {
		t.Fatalf("ack of deleted item: %v", err)
	}
	h.mu.RLock()
	_, known := h.rooms["r"].online["a"]
	offline := h.offline
	h.mu.RUnlock()
	if known || offline != 0 {
		t.Fatalf("online state kept after DropMember (known %v, offline count %d)", known, offline)
	}
	h.DropMember("r", "b")
	h.DropMember("s", "a")
	h.DropMember("nope", "a")
	if _, err := h.Ack("s", "a", other); !errors.Is(err, ErrNotOwed) {
		t.Fatalf("ack after DropMember in room s: %v", err)
	}
	wantStats(t, h.Stats(), Stats{})
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.rooms) != 0 {
		t.Fatalf("rooms left: %d", len(h.rooms))
	}
}

func TestDropMemberWakesPut(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 100, MaxRoomBytes: 100})
	h.mustPut(t, chunk("r", 60), "a", "b")
	h.SetOnline("r", "a", false)
	res := h.startPut(t, context.Background(), envelope("r", 50), "x")
	h.DropMember("r", "b") // now owed only to offline a: evictable
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
	if got := h.evicted.list(); len(got) != 1 {
		t.Fatalf("evicted %v", got)
	}
}

func TestRoomsDoNotLeak(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range 100 {
		room := fmt.Sprint("room", i)
		h.SetOnline(room, "a", true)
		ch := h.Changed(room)
		id := h.mustPut(t, chunk(room, 10), "a")
		<-ch
		h.Changed(room)
		if _, err := h.Ack(room, "a", id); err != nil {
			t.Fatal(err)
		}
		h.SetOnline(room, "a", false)
		h.DropMember(room, "a")
	}
	h.Put(canceled(), chunk("expiring", 1), []string{"a"})
	h.clock.Advance(time.Hour)
	h.Expire()
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.rooms) != 0 || h.offline != 0 || h.items != 0 || h.nonEmpty != 0 {
		t.Fatalf("left: rooms %d offline %d items %d nonEmpty %d", len(h.rooms), h.offline, h.items, h.nonEmpty)
	}
}

// TestProducerConsumers pushes 2000 chunks of 64 KiB through a 1 MiB store
// to two consumers, which must each see every chunk once, in order.
func TestProducerConsumers(t *testing.T) {
	const (
		n    = 2000
		size = 64 << 10
	)
	s, err := New(Config{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // safety net only
	defer cancel()

	members := []string{"a", "b"}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() {
		for i := range n {
			d := make([]byte, size)
			binary.BigEndian.PutUint32(d, uint32(i))
			if _, err := s.Put(ctx, Item{Room: "r", Sender: "p", Kind: KindChunk, File: "f", Data: d}, members); err != nil {
				errs <- fmt.Errorf("put %d: %w", i, err)
				return
			}
		}
	})
	for _, m := range members {
		wg.Go(func() {
			var after uint64
			for want := 0; want < n; {
				ch := s.Changed("r")
				it, ok := s.Next("r", m, after)
				if !ok {
					select {
					case <-ch:
						continue
					case <-ctx.Done():
						errs <- fmt.Errorf("%s: stuck after %d: %w", m, want, ctx.Err())
						return
					}
				}
				if got := int(binary.BigEndian.Uint32(it.Data)); got != want || it.ID <= after {
					errs <- fmt.Errorf("%s: got chunk %d (id %d after %d), want %d", m, got, it.ID, after, want)
					return
				}
				if _, err := s.Ack("r", m, it.ID); err != nil {
					errs <- fmt.Errorf("%s: ack: %w", m, err)
					return
				}
				after = it.ID
				want++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantStats(t, s.Stats(), Stats{})
}

func BenchmarkPutNextAck(b *testing.B) {
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	d := make([]byte, 64<<10)
	owed := []string{"m"}
	s.SetOnline("r", "m", true) // as the server does for a connected member
	b.SetBytes(int64(len(d)))
	b.ReportAllocs()
	var after uint64
	for b.Loop() {
		if _, err := s.Put(ctx, Item{Room: "r", Sender: "s", Kind: KindChunk, File: "f", Data: d}, owed); err != nil {
			b.Fatal(err)
		}
		it, ok := s.Next("r", "m", after)
		if !ok {
			b.Fatal("no item")
		}
		if _, err := s.Ack("r", "m", it.ID); err != nil {
			b.Fatal(err)
		}
		after = it.ID
	}
}

// BenchmarkPutNextAckPipelined runs producer and consumer concurrently
// through a 1 MiB cap, so it includes the cost of waiting and waking.
func BenchmarkPutNextAckPipelined(b *testing.B) {
	s, err := New(Config{MaxBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	d := make([]byte, 64<<10)
	b.SetBytes(int64(len(d)))
	b.ReportAllocs()
	n := b.N
	s.SetOnline("r", "m", true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var after uint64
		for got := 0; got < n; {
			ch := s.Changed("r")
			it, ok := s.Next("r", "m", after)
			if !ok {
				<-ch
				continue
			}
			s.Ack("r", "m", it.ID)
			after = it.ID
			got++
		}
	}()
	owed := []string{"m"}
	b.ResetTimer()
	for range n {
		if _, err := s.Put(ctx, Item{Room: "r", Kind: KindChunk, Data: d}, owed); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

// TestPutCopyNeverWaits: a cluster node's copy of an item another node
// admitted is stored at once over the room cap and the uploader's quotas
// (the acks that free the space come after it), and refused at once past
// twice the global cap.
func TestPutCopyNeverWaits(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 100})
	full := envelope("a", 50)
	h.mustPut(t, full, "x") // the room's cap (50) and the sender's quota are reached
	copy1 := envelope("a", 50)
	copy1.Sender = full.Sender
	if _, err := h.PutCopy(copy1, []string{"x"}); err != nil {
		t.Fatalf("PutCopy over the room cap and the sender's quota: %v", err)
	}
	for range 2 {
		if _, err := h.PutCopy(envelope("a", 50), []string{"x"}); err != nil {
			t.Fatalf("PutCopy up to twice the global cap: %v", err)
		}
	}
	if _, err := h.PutCopy(envelope("a", 50), []string{"x"}); !errors.Is(err, ErrFull) {
		t.Fatalf("PutCopy past twice the global cap: %v, want ErrFull", err)
	}
	wantStats(t, h.Stats(), Stats{Bytes: 200, Items: 4, Rooms: 1})
	select {
	case <-h.waiting:
		t.Fatal("a PutCopy waited")
	default:
	}
}
