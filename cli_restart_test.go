package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// TestCLIChatAcrossRestart: two chat processes stay in a room while the
// server is killed with SIGKILL and started again. Lines typed during the
// outage are queued and delivered once the room is restored, nothing sent
// before is delivered again, and nobody re-creates the room or re-shares
// the link.
func TestCLIChatAcrossRestart(t *testing.T) {
	srv := startRestartable(t)
	link, _ := newRoom(t, srv.url)
	a, aIn := startIn(t, true, "chat", link)
	b, bIn := startIn(t, true, "chat", link)
	joined := regexp.MustCompile(`^stderr: \* [0-9a-f]{8} (join|online)`)
	a.waitLine(t, joined, 20*time.Second)

	say := func(w io.Writer, text string) {
		t.Helper()
		if _, err := fmt.Fprintln(w, text); err != nil {
			t.Fatalf("write to chat: %v", err)
		}
	}
	heard := func(p *proc, text string) {
		t.Helper()
		p.waitLine(t, regexp.MustCompile(`^[0-9a-f]{8}: `+regexp.QuoteMeta(text)+`$`), 30*time.Second)
	}
	say(aIn, "before the restart")
	heard(b, "before the restart")

	srv.kill()
	reconnecting := regexp.MustCompile(`^stderr: \* reconnecting`)
	a.waitLine(t, reconnecting, 20*time.Second)
	b.waitLine(t, reconnecting, 20*time.Second)
	say(aIn, "typed during the outage 1")
	say(bIn, "typed during the outage by b")
	say(aIn, "typed during the outage 2")
	srv.start()

	restored := regexp.MustCompile(`^stderr: \* restored`)
	a.waitLine(t, restored, 30*time.Second)
	b.waitLine(t, restored, 30*time.Second)
	heard(b, "typed during the outage 1")
	heard(b, "typed during the outage 2")
	heard(a, "typed during the outage by b")
	say(aIn, "after the restart")
	heard(b, "after the restart")
	say(bIn, "after the restart from b")
	heard(a, "after the restart from b")

	for name, p := range map[string]*proc{"a": a, "b": b} {
		seen := map[string]int{}
		for _, l := range p.output() {
			if i := strings.Index(l, ": "); i == 8 && !strings.HasPrefix(l, "stderr") {
				seen[l[i+2:]]++
			}
		}
		for text, n := range seen {
			if n != 1 {
				t.Errorf("%s printed %q %d times", name, text, n)
			}
		}
	}
	aIn.Close()
	bIn.Close()
}

// TestCLIShutdownGoingAway: SIGTERM with 50 connected clients: every client
// gets error{going_away} and a 1001 close (so it reconnects at once rather
// than after a timeout), and the process exits within 5 s.
func TestCLIShutdownGoingAway(t *testing.T) {
	srv, url := startServer(t)
	const rooms, perRoom = 5, 10
	var conns []*websocket.Conn
	for r := 0; r < rooms; r++ {
		room := newRoomCreds()
		for m := 0; m < perRoom; m++ {
			c, _ := dialJoin(t, websocket.DefaultDialer, url, room)
			conns = append(conns, c.ws)
		}
	}
	type result struct {
		goingAway bool
		code      int
		err       error
	}
	results := make([]result, len(conns))
	var wg sync.WaitGroup
	for i, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						results[i].code = ce.Code
					} else {
						results[i].err = err
					}
					return
				}
				if m, err := protocol.Decode(data); err == nil && m.Type == protocol.TypeError && m.Code == protocol.CodeGoingAway {
					results[i].goingAway = true
				}
			}
		}()
	}
	began := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("server still running 5 s after SIGTERM")
	}
	took := time.Since(began)
	wg.Wait()
	for i, r := range results {
		if !r.goingAway || r.code != websocket.CloseGoingAway {
			t.Errorf("client %d: going_away message %v, close code %d (%v); want going_away and %d", i, r.goingAway, r.code, r.err, websocket.CloseGoingAway)
		}
	}
	t.Logf("%d clients told going_away; server exited %s after SIGTERM", len(conns), took.Round(time.Millisecond))
}
