package signaling

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

func TestNewConfig(t *testing.T) {
	for _, cfg := range []Config{
		{MaxMembers: -1},
		{Relay: store.Config{TTL: -time.Second}},
		{Relay: store.Config{MaxBytes: -1}},
		{Relay: store.Config{OnEvict: func(store.Item, []string) {}}},
		{MaxMembers: protocol.MaxMembers + 1},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v): %v, want ErrConfig", cfg, err)
		}
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxMembers != defaultMaxMembers || s.cfg.SendQueue != defaultSendQueue || s.cfg.DeliveryWindow != defaultWindow {
		t.Fatalf("defaults not filled: %+v", s.cfg)
	}
	if r := s.Config().Relay; r.MaxBytes != store.DefaultMaxBytes || r.MaxRoomBytes != store.DefaultRoomCap(store.DefaultMaxBytes) || r.TTL != store.DefaultTTL {
		t.Fatalf("relay defaults not filled: %+v", r)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestJoinWelcomePresence(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	ida, idb := newIdent(), newIdent()
	a := e.join(rc, ida)
	if len(a.welcome.Members) != 0 || a.welcome.TTL != 600 {
		t.Fatalf("first welcome %+v", a.welcome)
	}
	b := e.join(rc, idb)
	want := protocol.MemberInfo{Member: ida.member, Pub: ida.pub, MAC: ida.mac, Online: true}
	if len(b.welcome.Members) != 1 || b.welcome.Members[0] != want {
		t.Fatalf("welcome members %+v, want [%+v]", b.welcome.Members, want)
	}
	p := a.expectPresence(protocol.EventJoin, idb.member)
	if p.Pub != idb.pub || p.MAC != idb.mac || !p.Online {
		t.Fatalf("presence join %+v", p)
	}

	b.close()
	a.expectPresence(protocol.EventOffline, idb.member)
	if st := e.srv.Stats(); st.Rooms != 1 || st.Members != 2 || st.Online != 1 {
		t.Fatalf("stats %+v", st)
	}

	b = e.join(rc, idb) // reconnect: same member, same key
	a.expectPresence(protocol.EventOnline, idb.member)
	if len(b.welcome.Members) != 1 || !b.welcome.Members[0].Online {
		t.Fatalf("welcome after reconnect %+v", b.welcome.Members)
	}
}

func TestWrongVerifier(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	ida := newIdent()
	a := e.join(rc, ida)

	bad := e.connect()
	bad.send(joinMsg(roomCreds{room: rc.room, verifier: randB64(protocol.VerifierLen)}, newIdent()))
	m := bad.expectError(protocol.CodeBadVerifier)
	if !strings.Contains(m.Error, "wrong room verifier") {
		t.Fatalf("error text %q", m.Error)
	}
	bad.expectClose(closeBadVerifier) // and nothing else came before the close

	// The room did not see it: the next thing a gets is b's join.
	idb := newIdent()
	e.join(rc, idb)
	a.expectPresence(protocol.EventJoin, idb.member)
}

func TestOtherRoomGetsNothing(t *testing.T) {
	e := newEnv(t)
	r1, r2 := newCreds(), newCreds()
	a, b := e.join(r1, newIdent()), e.join(r1, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	c, d := e.join(r2, newIdent()), e.join(r2, newIdent())
	c.expectPresence(protocol.EventJoin, d.id.member)

	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(40)})
	if m := b.expect(protocol.TypeMsg); m.From != a.id.member {
		t.Fatalf("msg from %s", m.From)
	}
	a.sync()
	d.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(40)})
	if m := c.expect(protocol.TypeMsg); m.From != d.id.member { // not a's
		t.Fatalf("room 2 got a msg from %s", m.From)
	}
	if n, _ := e.st.Owed(r1.room, c.id.member); n != 0 {
		t.Fatalf("%d items of room 1 owed to a member of room 2", n)
	}
}

func TestJoinRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MaxMembers = 2; c.MaxRooms = 1 })
	rc := newCreds()
	ida := newIdent()
	e.join(rc, ida)
	e.join(rc, newIdent())

	tests := []struct {
		name  string
		msg   *protocol.Message
		code  string
		close int
	}{
		{"member_taken", joinMsg(rc, ident{member: ida.member, pub: randB64(protocol.PubLen), mac: ida.mac}),
			protocol.CodeMemberTaken, websocket.ClosePolicyViolation},
		{"room_full", joinMsg(rc, newIdent()), protocol.CodeRoomFull, websocket.CloseTryAgainLater},
		{"too_many rooms", joinMsg(newCreds(), newIdent()), protocol.CodeTooMany, websocket.CloseTryAgainLater},
		{"not_joined", &protocol.Message{Type: protocol.TypeLeave}, protocol.CodeNotJoined, websocket.ClosePolicyViolation},
		{"version", func() *protocol.Message { m := joinMsg(rc, newIdent()); m.V = protocol.Version + 1; return m }(),
			protocol.CodeVersion, websocket.ClosePolicyViolation},
		{"bad join", func() *protocol.Message { m := joinMsg(rc, newIdent()); m.Pub = "x"; return m }(),
			protocol.CodeBadRequest, websocket.ClosePolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect()
			c.t = t
			c.send(tt.msg)
			c.expectError(tt.code)
			c.expectClose(tt.close)
		})
	}
	t.Run("binary first", func(t *testing.T) {
		c := e.connect()
		c.t = t
		c.sendRaw(websocket.BinaryMessage, []byte{1, 1, 0})
		c.expectError(protocol.CodeNotJoined)
		c.expectClose(websocket.ClosePolicyViolation)
	})
}

func TestTooManyConns(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.MaxConns = 1 })
	e.join(newCreds(), newIdent())
	c := e.connect()
	c.expectError(protocol.CodeTooMany)
	c.expectClose(websocket.CloseTryAgainLater)
}

func TestJoinTimeout(t *testing.T) {
	e := newEnv(t)
	e.srv.setJoinTimeout(100 * time.Millisecond)
	c := e.connect()
	f := <-c.in // the server drops it without a join: the read ends
	if f.err == nil {
		t.Fatalf("got %q, want the connection to end", f.data)
	}
}

func TestReplaceConnection(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a, idb := e.join(rc, newIdent()), newIdent()
	old := e.join(rc, idb)
	a.expectPresence(protocol.EventJoin, idb.member)

	b := e.join(rc, idb) // same member while the old connection is alive
	old.expectClose(closeReplaced)
	a.expectPresence(protocol.EventOnline, idb.member)
	e.waitGone(1)

	// The replaced connection did not mark b offline: the next thing a
	// gets is b's signal, and b is still reachable.
	b.send(&protocol.Message{Type: protocol.TypeSignal, To: a.id.member, Data: randB64(10)})
	if m := a.expect(protocol.TypeSignal); m.From != idb.member {
		t.Fatalf("signal from %s", m.From)
	}
	a.send(&protocol.Message{Type: protocol.TypeSignal, To: idb.member, Data: randB64(10)})
	b.expect(protocol.TypeSignal)
}

func TestOrigin(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *store.Config) { c.AllowedOrigins = []string{"https://app.example"} })
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{e.ts.URL, true},
		{"https://app.example", true},
		{"https://evil.example", false},
		{"null", false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		ws, resp, err := e.dial(h)
		switch {
		case tt.ok && err != nil:
			t.Errorf("origin %q refused: %v", tt.origin, err)
		case !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden):
			t.Errorf("origin %q: err %v, want 403", tt.origin, err)
		}
		if ws != nil {
			_ = ws.Close()
		}
	}
}

func TestHTTPRoutes(t *testing.T) {
	e := newEnv(t)
	get := func(path string) (int, string) {
		resp, err := http.Get(e.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, _ := get("/"); code != http.StatusNotFound {
		t.Fatalf("/ without Static: %d", code)
	}

	static := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "page") })
	e2 := newEnv(t, func(c *Config, _ *store.Config) { c.Static = static })
	resp, err := http.Get(e2.ts.URL + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "page" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("static: %q, headers %v", b, resp.Header)
	}
}

// TestReturnAfterClose: a page that reloads closes its connection and joins
// again as the same member with the same key (issue 14): the others see it
// go offline and come back online — never a second member — its welcome
// lists them, and the chat it had not acked is delivered again.
func TestReturnAfterClose(t *testing.T) {
	e := newEnv(t)
	rc := newCreds()
	a, idb := e.join(rc, newIdent()), newIdent()
	b := e.join(rc, idb)
	a.expectPresence(protocol.EventJoin, idb.member)

	a.send(&protocol.Message{Type: protocol.TypeMsg, Data: randB64(64)})
	first := b.expect(protocol.TypeMsg).ID // not acked: the page reloads first
	b.close()
	a.expectPresence(protocol.EventOffline, idb.member)
	e.waitGone(1)

	b = e.join(rc, idb)
	a.expectPresence(protocol.EventOnline, idb.member)
	if len(b.welcome.Members) != 1 || b.welcome.Members[0].Member != a.id.member || !b.welcome.Members[0].Online {
		t.Fatalf("welcome of the returning member lists %+v", b.welcome.Members)
	}
	if got := b.expect(protocol.TypeMsg).ID; got != first {
		t.Fatalf("redelivered item %d, want %d", got, first)
	}
	// Still one member besides a: a third member's welcome lists a and b once each.
	c := e.join(rc, newIdent())
	if n := len(c.welcome.Members); n != 2 {
		t.Fatalf("a newcomer sees %d members, want 2: %+v", n, c.welcome.Members)
	}
}
