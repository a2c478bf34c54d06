package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
	"cloakroom/signaling"
)

// testTimeout bounds every test; waits are on events, never on sleeps, so
// this only matters when something is broken.
const testTimeout = 90 * time.Second

// testCtx returns a context that ends after testTimeout or with the test.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock is an injectable clock for the store and the server.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// serverOpts configure a test server. Zero values keep the defaults.
type serverOpts struct {
	MaxBytes     int64
	MaxRoomBytes int64
	RelayTTL     time.Duration
	Clock        *fakeClock
	OnFrame      func(binary bool, data []byte)
}

// testServer is a running server: real signaling (with its own relay
// store), real HTTP.
type testServer struct {
	Store relayView
	Srv   *signaling.Server
	HTTP  *httptest.Server
	URL   string // http://127.0.0.1:PORT
}

// newServer starts a server wired like main's serve command.
func newServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	var now func() time.Time
	if o.Clock != nil {
		now = o.Clock.Now
	}
	srv, err := signaling.New(signaling.Config{
		Relay: store.Config{MaxBytes: o.MaxBytes, MaxRoomBytes: o.MaxRoomBytes, TTL: o.RelayTTL},
		Now:   now, OnFrame: o.OnFrame,
	})
	if err != nil {
		t.Fatalf("signaling.New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	// Cleanups run last-in first-out: clients (registered later) close
	// first, then the server (and its store), then the listener.
	t.Cleanup(hs.Close)
	t.Cleanup(func() { _ = srv.Close() })
	return &testServer{Store: relayView{srv}, Srv: srv, HTTP: hs, URL: hs.URL}
}

// relayView reads the server's relay store through signaling's API.
type relayView struct{ srv *signaling.Server }

func (v relayView) Stats() store.Stats { return v.srv.Stats().Relay }

func (v relayView) Owed(room, member string) (int, int64) { return v.srv.RelayOwed(room, member) }

// newSecret makes a fresh room secret.
func newSecret(t *testing.T) crypto.Secret {
	t.Helper()
	s, err := crypto.NewSecret()
	if err != nil {
		t.Fatalf("NewSecret: %v", err)
	}
	return s
}

// events is a goroutine-safe append-only log that can be waited on.
type events[T any] struct {
	mu    sync.Mutex
	items []T
	ch    chan struct{} // closed and replaced on every add
}

func (e *events[T]) add(v T) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.items = append(e.items, v)
	if e.ch != nil {
		close(e.ch)
		e.ch = nil
	}
}

func (e *events[T]) snapshot() []T {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.items)
}

// changed returns a channel closed at the next add.
func (e *events[T]) changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch == nil {
		e.ch = make(chan struct{})
	}
	return e.ch
}

// wait blocks until ok holds for the log (checked now and after every add)
// or ctx ends; it returns the log it accepted.
func (e *events[T]) wait(ctx context.Context, ok func([]T) bool) ([]T, error) {
	for {
		ch := e.changed()
		if items := e.snapshot(); ok(items) {
			return items, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return e.snapshot(), ctx.Err()
		}
	}
}

// count returns how many items of s satisfy f.
func count[T any](s []T, f func(T) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}

// presenceEvent is one OnPresence call.
type presenceEvent struct {
	Member string
	Event  string
}

// peer is a client under test with everything its callbacks reported.
type peer struct {
	*client.Client
	name     string
	dir      string
	chats    events[client.Chat]
	presence events[presenceEvent]
	states   events[string]
	progress events[client.Progress]
	logs     *events[logRecord] // what the client logged, at every level
}

// dialPeer joins invite as a new client receiving into a fresh directory.
// mod, if set, may change the options after the recording callbacks are
// installed (wrap them to keep the recording).
func dialPeer(ctx context.Context, t *testing.T, invite, name string, mod func(*client.Options)) *peer {
	t.Helper()
	p := &peer{name: name, dir: t.TempDir(), logs: &events[logRecord]{}}
	opts := client.Options{
		Logger: slog.New(&logRecorder{log: p.logs}),
		// Loopback only: the root package's tests, run beside these, add
		// and remove addresses and interfaces on this machine.
		HostAddr:   func(ip net.IP) bool { return ip.IsLoopback() },
		Dir:        p.dir,
		Transport:  protocol.TransportRelay, // these tests are about the relay; p2p tests set their own
		OnChat:     func(c client.Chat) { p.chats.add(c) },
		OnPresence: func(m client.Member, ev string) { p.presence.add(presenceEvent{m.ID, ev}) },
		OnState:    func(s protocol.ConnState) { p.states.add(string(s)) },
		OnProgress: func(pr client.Progress) { p.progress.add(pr) },
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := client.Dial(ctx, invite, opts)
	if err != nil {
		t.Fatalf("%s: Dial: %v", name, err)
	}
	p.Client = c
	t.Cleanup(func() { _ = c.Close() })
	t.Cleanup(func() { p.dumpLog(t) })
	return p
}

// dumpLog prints, when t failed, what the client logged from Info up (and
// everything with DEBUGLOG set); pion's and the debug records are counted.
func (p *peer) dumpLog(t *testing.T) {
	if !t.Failed() {
		return
	}
	quiet := 0
	for _, r := range p.logs.snapshot() {
		if _, pion := r.Attrs["pion"]; (pion || r.Level < slog.LevelInfo) && os.Getenv("DEBUGLOG") == "" {
			quiet++
			continue
		}
		t.Logf("%s log: %s %q %v", p.name, r.Level, r.Msg, r.Attrs)
	}
	t.Logf("%s log: and %d debug or pion records", p.name, quiet)
	dumpStacksOnce(t)
}

var stacksDumped sync.Map // test name -> true

// dumpStacksOnce writes every goroutine's stack, once per failed test, to
// test-output/ (a stall shows where it stands) and says where.
func dumpStacksOnce(t *testing.T) {
	if _, done := stacksDumped.LoadOrStore(t.Name(), true); done {
		return
	}
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	dir := filepath.Join("..", "test-output")
	name := filepath.Join(dir, "e2e-stacks-"+strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+".txt")
	if err := os.MkdirAll(dir, 0o755); err == nil && os.WriteFile(name, buf, 0o644) == nil {
		t.Logf("goroutine stacks at the failure: %s (%d bytes)", name, len(buf))
	}
}

// waitOnline waits until p knows every member of ids as online (its welcome
// or presence events say so).
func waitOnline(ctx context.Context, t *testing.T, p *peer, ids ...string) {
	t.Helper()
	_, err := p.presence.wait(ctx, func([]presenceEvent) bool {
		online := p.OnlineMembers()
		for _, id := range ids {
			if !slices.Contains(online, id) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%s: waiting for members %v online (online: %v): %v", p.name, ids, p.OnlineMembers(), err)
	}
}

// meshVerified waits until every peer has verified every other one's
// presence (each answered the others' challenges): no presence signal is
// in flight after it.
func meshVerified(ctx context.Context, t *testing.T, peers ...*peer) {
	t.Helper()
	for _, p := range peers {
		for _, q := range peers {
			if p == q {
				continue
			}
			_, err := p.presence.wait(ctx, func([]presenceEvent) bool {
				for _, m := range p.Members() {
					if m.ID == q.ID() {
						return m.Verified
					}
				}
				return false
			})
			if err != nil {
				t.Fatalf("%s: waiting to verify %s: %v", p.name, q.name, err)
			}
		}
	}
}

// meshOnline waits until every peer sees every other one online.
func meshOnline(ctx context.Context, t *testing.T, peers ...*peer) {
	t.Helper()
	for _, p := range peers {
		var others []string
		for _, q := range peers {
			if q != p {
				others = append(others, q.ID())
			}
		}
		waitOnline(ctx, t, p, others...)
	}
}

// waitChat waits until p received a chat satisfying ok and returns every
// chat p got so far.
func waitChat(ctx context.Context, t *testing.T, p *peer, what string, ok func(client.Chat) bool) []client.Chat {
	t.Helper()
	got, err := p.chats.wait(ctx, func(cs []client.Chat) bool { return slices.ContainsFunc(cs, ok) })
	if err != nil {
		t.Fatalf("%s: waiting for chat %s: %v (got %d chats: %+v)", p.name, what, err, len(got), got)
	}
	return got
}

// waitState waits until p's client reported state s n times in total.
func waitState(ctx context.Context, t *testing.T, p *peer, s string, n int) {
	t.Helper()
	got, err := p.states.wait(ctx, func(st []string) bool {
		return count(st, func(x string) bool { return x == s }) >= n
	})
	if err != nil {
		t.Fatalf("%s: waiting for state %q x%d: %v (states: %v)", p.name, s, n, err, got)
	}
}

// waitPresence waits until p saw event ev for member n times in total.
func waitPresence(ctx context.Context, t *testing.T, p *peer, member, ev string, n int) {
	t.Helper()
	got, err := p.presence.wait(ctx, func(es []presenceEvent) bool {
		return count(es, func(e presenceEvent) bool { return e.Member == member && e.Event == ev }) >= n
	})
	if err != nil {
		t.Fatalf("%s: waiting for presence %s of %s x%d: %v (events: %+v)", p.name, ev, member, n, err, got)
	}
}

// nextFile waits for p's next received (or failed) file.
func nextFile(ctx context.Context, t *testing.T, p *peer) client.File {
	t.Helper()
	f, err := p.NextFile(ctx)
	if err != nil {
		t.Fatalf("%s: NextFile: %v", p.name, err)
	}
	return f
}

// randomMarker returns a unique ASCII marker that cannot occur by chance.
func randomMarker(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// makeFile writes size bytes into dir/name: random data with marker (if
// any) written every 4 KiB. It returns the path and the hex SHA-256.
func makeFile(t *testing.T, dir, name string, size int, marker string) (string, string) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if marker != "" {
		for off := 0; off+len(marker) <= size; off += 4096 {
			copy(data[off:], marker)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// visibleFiles lists the names in dir that are not hidden (the client keeps
// partial files as hidden ".cloakroom-*.part").
func visibleFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// sendAsync runs SendFile in a goroutine; the result arrives on the channel.
type sendResult struct {
	rep *client.SendReport
	err error
}

func sendAsync(ctx context.Context, p *peer, path string) <-chan sendResult {
	ch := make(chan sendResult, 1)
	go func() {
		rep, err := p.SendFile(ctx, path)
		ch <- sendResult{rep, err}
	}()
	return ch
}

func awaitSend(ctx context.Context, t *testing.T, ch <-chan sendResult) sendResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.Fatalf("waiting for SendFile: %v", ctx.Err())
	}
	return sendResult{}
}

// containsAny reports which of needles occur in hay.
func containsAny(hay []byte, needles [][]byte) []string {
	var found []string
	for _, n := range needles {
		if len(n) > 0 && bytes.Contains(hay, n) {
			found = append(found, string(n))
		}
	}
	return found
}
