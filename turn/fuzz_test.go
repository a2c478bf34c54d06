package turn

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"cloakroom/internal/auth"
)

// FuzzGateInspect: the gate reads every frame a client sends before pion
// does; no input may panic it, and a refused frame always comes with either
// a reply or a silent drop, never a reply for a frame it lets through.
func FuzzGateInspect(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	cfg := &Config{RelayPortMin: 50000, RelayPortMax: 50100}
	g := &gate{realm: "cloakroom", secret: testSecret, now: func() time.Time { return now }, revoked: newRevocations(),
		policy: newPolicy(cfg, net.ParseIP("203.0.113.7"), nil), stats: &counters{}, log: slog.New(slog.DiscardHandler)}
	user, pass := auth.MintTURN(testSecret, "alice", time.Hour, now)
	creds := []stun.Setter{stun.NewUsername(user), stun.NewRealm("cloakroom"), stun.NewNonce("n"),
		stun.NewLongTermIntegrity(user, "cloakroom", pass), stun.Fingerprint}
	peer := &net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 9}
	for _, method := range []stun.Method{stun.MethodAllocate, stun.MethodCreatePermission, stun.MethodChannelBind, stun.MethodRefresh} {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest), peerAddr(peer)}, creds...)
		f.Add(stun.MustBuild(setters...).Raw)
	}
	f.Add(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		stun.RawAttribute{Type: stun.AttrData, Value: []byte("x")}, peerAddr(peer), stun.Fingerprint).Raw)
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4}) // ChannelData
	f.Fuzz(func(t *testing.T, data []byte) {
		var m stun.Message
		reply, drop := g.inspect(&m, data, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000})
		if reply != nil && !drop {
			t.Fatalf("reply for a frame passed on to pion")
		}
	})
}
