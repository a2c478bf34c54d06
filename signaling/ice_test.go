package signaling

import (
	"slices"
	"strings"
	"testing"
	"time"

	"cloakroom/internal/protocol"
	"cloakroom/internal/store"
)

// withICE makes the server hand out credentials naming the member, with a
// counter so a refresh is visibly fresh.
func withICE(calls *int) envOpt {
	return func(c *Config, _ *store.Config) {
		c.ICE = func(member, host string) ([]protocol.ICEServer, time.Time) {
			*calls++
			return []protocol.ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp", "turns:" + host + "?transport=tcp"},
				Username: member, Credential: string(rune('a' + *calls))}}, time.Unix(1_700_000_600, 0)
		}
	}
}

// TestICEOnlyForMembers: TURN credentials come in the welcome of a member
// that joined with the verifier, and on request; a wrong verifier gets none.
func TestICEOnlyForMembers(t *testing.T) {
	var calls int
	e := newEnv(t, withICE(&calls))
	rc := newCreds()
	a := e.connect()
	ida := newIdent()
	a.send(joinMsg(rc, ida))
	w := a.expect(protocol.TypeWelcome)
	if len(w.ICE) != 1 || w.ICE[0].Username != ida.member+"."+rc.room || w.Expires != 1_700_000_600 {
		t.Fatalf("welcome ICE %+v expires %d, want credentials for %s in its room", w.ICE, w.Expires, ida.member)
	}
	a.send(&protocol.Message{Type: protocol.TypeTURN})
	r := a.expect(protocol.TypeTURN)
	if len(r.ICE) != 1 || r.ICE[0].Credential == w.ICE[0].Credential {
		t.Fatalf("turn refresh %+v, want fresh credentials", r.ICE)
	}
	// Both name the server as the client reached it (the request's Host).
	host := strings.TrimPrefix(e.ts.URL, "http://")
	for _, m := range []*protocol.Message{w, r} {
		if got := m.ICE[0].URLs[1]; got != "turns:"+host+"?transport=tcp" {
			t.Fatalf("%s: URL %s, want the Host %s", m.Type, got, host)
		}
	}

	bad := e.connect()
	bad.send(joinMsg(roomCreds{room: rc.room, verifier: randB64(protocol.VerifierLen)}, newIdent()))
	bad.expectError(protocol.CodeBadVerifier)
	bad.expectClose(closeBadVerifier)
	if calls != 2 {
		t.Fatalf("credentials minted %d times, want 2 (welcome + refresh), none for the wrong verifier", calls)
	}
}

// TestFileForChosenRecipients: a file may name the recipients it is for
// (the fallback ladder sends through the relay only to peers it could not
// reach directly); others get nothing of it.
func TestFileForChosenRecipients(t *testing.T) {
	e := newEnv(t)
	_, a, b, c := room3(e)
	f := newTestFile(3, 100)
	a.send(&protocol.Message{Type: protocol.TypeFile, File: f.id, Chunks: 3, Data: randB64(64), Recipients: []string{c.id.member}})
	ok := a.expect(protocol.TypeFileOK)
	if !slices.Equal(ok.Recipients, []string{c.id.member}) {
		t.Fatalf("recipients %v, want only %s", ok.Recipients, c.id.member)
	}
	a.upload(f, 0, 3)
	c.recvFile(f, a.id.member)
	b.quiet(200 * time.Millisecond)
}

// TestForgetRevokesTURN: a member who leaves is reported (as the TURN user
// its credentials name) so they can be revoked; the others are not.
func TestForgetRevokesTURN(t *testing.T) {
	forgot := make(chan string, 4)
	e := newEnv(t, func(c *Config, _ *store.Config) { c.OnForget = func(u string) { forgot <- u } })
	rc := newCreds()
	a, b := e.join(rc, newIdent()), e.join(rc, newIdent())
	a.expectPresence(protocol.EventJoin, b.id.member)
	b.send(&protocol.Message{Type: protocol.TypeLeave})
	a.expectPresence(protocol.EventLeave, b.id.member)
	select {
	case u := <-forgot:
		if u != b.id.member+"."+rc.room {
			t.Fatalf("forgot %q, want b in its room", u)
		}
	default:
		t.Fatal("leave did not report the member's TURN user")
	}
	if len(forgot) != 0 {
		t.Fatalf("also forgot %q", <-forgot)
	}
}
