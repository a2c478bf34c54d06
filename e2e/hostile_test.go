package e2e

// Hostile-server tests (issue 3): a man in the middle between a client and
// the signaling server plays the part of a malicious server. It rewrites the
// sealed signals it forwards (where the DTLS fingerprint of an SDP answer
// sits), swaps a member's ECDH public key in the welcome or in presence, and
// replays an old sealed offer. Each time the client must refuse with a clear
// error, and no file byte may flow over the connection it refused.

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// logRecord is one record a client logged.
type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]any
}

// err returns the record's "err" attribute when it is an error.
func (r logRecord) err() error {
	e, _ := r.Attrs["err"].(error)
	return e
}

// logRecorder is a slog.Handler keeping every record (error values intact,
// so tests can use errors.Is on what the client logged).
type logRecorder struct {
	log   *events[logRecord]
	attrs []slog.Attr
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]any{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.Any()
		return true
	})
	h.log.add(rec)
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{log: h.log, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// hostilePeer is a peer-to-peer client under test whose log is recorded.
type hostilePeer struct {
	*peer
}

// dialHostile joins link with --transport p2p and a recording logger; mod
// may change further options.
func dialHostile(ctx context.Context, t *testing.T, link, name string, mod func(*client.Options)) *hostilePeer {
	t.Helper()
	p := dialPeer(ctx, t, link, name, func(o *client.Options) {
		o.Transport = protocol.TransportP2P
		if mod != nil {
			mod(o)
		}
	})
	return &hostilePeer{peer: p}
}

// sessionsEnded counts the peer sessions p saw end.
func sessionsEnded(p *hostilePeer) int {
	n := 0
	for _, r := range p.logs.snapshot() {
		if r.Msg == "peer session ended" {
			n++
		}
	}
	return n
}

// authRefusals returns the errors of the warnings p logged that wrap
// client.ErrSignalAuth: one per signal it refused.
func authRefusals(p *hostilePeer) []error {
	var out []error
	for _, r := range p.logs.snapshot() {
		if e := r.err(); r.Level >= slog.LevelWarn && e != nil && errors.Is(e, client.ErrSignalAuth) {
			out = append(out, e)
		}
	}
	return out
}

// loggedErrorsWrapping returns every logged error of p that wraps target.
func loggedErrorsWrapping(p *hostilePeer, target error) []error {
	var out []error
	for _, r := range p.logs.snapshot() {
		if e := r.err(); e != nil && errors.Is(e, target) {
			out = append(out, e)
		}
	}
	return out
}

// decodeSignal returns m when frame is a signal message.
func decodeSignal(frame []byte) (*protocol.Message, bool) {
	m, err := protocol.Decode(frame)
	if err != nil || m.Type != protocol.TypeSignal {
		return nil, false
	}
	return m, true
}

// partFiles lists the partial files (".cloakroom-*.part") in dir.
func partFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".cloakroom-") && strings.HasSuffix(e.Name(), ".part") {
			out = append(out, e.Name())
		}
	}
	return out
}

// progressWith returns p's progress reports that satisfy f.
func progressWith(p *peer, f func(client.Progress) bool) []client.Progress {
	var out []client.Progress
	for _, pr := range p.progress.snapshot() {
		if f(pr) {
			out = append(out, pr)
		}
	}
	return out
}

// errLog collects errors met inside man-in-the-middle transforms (which run
// on the proxy's goroutines); the test checks it at the end.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		t.Errorf("man in the middle: %v", err)
	}
}

// answerFingerprintOffset returns where, in a sealed signal carrying a pion
// SDP answer, the hex digits of its a=fingerprint line sit: the signal is an
// 8-byte counter followed by AES-GCM ciphertext, whose bytes line up one to
// one with the plaintext (CTR mode). A server that knows the layout of the
// client's signals (open source) knows where to flip bits to rewrite the
// fingerprint; only the AEAD tag stops it. The offset is measured on a
// reference answer made here, shaped like the client's signal body
// ({"kind","session","sdp"}); it lands in the middle of the 95-character
// fingerprint, so small differences in the SDP's length do not matter.
func answerFingerprintOffset(t *testing.T) int {
	t.Helper()
	api := webrtc.NewAPI()
	off, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatalf("reference offerer: %v", err)
	}
	defer off.Close()
	if _, err := off.CreateDataChannel("cloakroom", nil); err != nil {
		t.Fatalf("reference data channel: %v", err)
	}
	offer, err := off.CreateOffer(nil)
	if err != nil {
		t.Fatalf("reference offer: %v", err)
	}
	ans, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatalf("reference answerer: %v", err)
	}
	defer ans.Close()
	if err := ans.SetRemoteDescription(offer); err != nil {
		t.Fatalf("reference remote description: %v", err)
	}
	answer, err := ans.CreateAnswer(nil)
	if err != nil {
		t.Fatalf("reference answer: %v", err)
	}
	body, err := json.Marshal(struct {
		Kind    string `json:"kind"`
		Session string `json:"session"`
		SDP     string `json:"sdp"`
	}{"answer", uuid.NewString(), answer.SDP})
	if err != nil {
		t.Fatalf("reference body: %v", err)
	}
	const line = "a=fingerprint:sha-256 "
	i := bytes.Index(body, []byte(line))
	if i < 0 {
		t.Fatalf("reference answer has no %q line:\n%s", line, answer.SDP)
	}
	return 8 + i + len(line) + 47
}

// sendDirect sends path from from and fails the test unless exactly the
// members to got it, each over a direct data channel. On failure it names
// the signals the clients involved refused: through an honest link there
// should be none (see TestHostileHonestServerNoRefusals).
func sendDirect(ctx context.Context, t *testing.T, from *hostilePeer, path string, to ...*hostilePeer) *client.SendReport {
	t.Helper()
	rep, err := from.SendFile(ctx, path)
	bad := err != nil || rep == nil || len(rep.Delivered) != len(to)
	for _, p := range to {
		bad = bad || rep.Paths[p.ID()] != "direct"
	}
	if bad {
		var refused []string
		for _, p := range append([]*hostilePeer{from}, to...) {
			for _, e := range authRefusals(p) {
				refused = append(refused, p.name+": "+e.Error())
			}
		}
		var paths map[string]protocol.Path
		var failed map[string]string
		if rep != nil {
			paths, failed = rep.Paths, rep.Failed
		}
		t.Fatalf("%s's SendFile of %s: %v; paths %v, failed %v; want direct to %d member(s); signals refused so far: %q",
			from.name, filepath.Base(path), err, paths, failed, len(to), refused)
	}
	return rep
}

// TestHostileTamperedSignal: the server alters the sealed SDP answer on its
// way to the offering sender. The sender must refuse the connection with
// ErrSignalAuth — not wait for ICE to time out, not connect — and no file
// byte may reach the receiver; a second send, untouched, goes through
// directly (so the refusal was about the tampering, and the client is fine
// afterwards).
func TestHostileTamperedSignal(t *testing.T) {
	fpOffset := answerFingerprintOffset(t)
	cases := []struct {
		name string
		// edit rewrites the decoded data of the first signal the sender
		// gets (the receiver's answer); ownOffer is the data of the first
		// signal the sender sent (its offer), as the server saw it.
		edit func(data, ownOffer []byte) []byte
	}{
		{name: "flip a bit of the DTLS fingerprint in the answer", edit: func(d, _ []byte) []byte {
			i := min(fpOffset, len(d)-17) // never the tag: that is another case
			d[i] ^= 0x01
			return d
		}},
		{name: "flip a bit of the GCM tag", edit: func(d, _ []byte) []byte {
			d[len(d)-1] ^= 0x80
			return d
		}},
		{name: "change the counter", edit: func(d, _ []byte) []byte {
			d[7] ^= 0x02
			return d
		}},
		{name: "truncate the ciphertext", edit: func(d, _ []byte) []byte {
			return d[:len(d)/2]
		}},
		{name: "random bytes of the same length", edit: func(d, _ []byte) []byte {
			_, _ = rand.Read(d)
			return d
		}},
		{name: "reflect the sender's own offer back as the answer", edit: func(_, own []byte) []byte {
			return bytes.Clone(own)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			ts := newServer(t, serverOpts{})
			secret := newSecret(t)
			var (
				mitmErrs errLog
				mu       sync.Mutex
				ownOffer []byte
				done     bool
				tampered = make(chan struct{})
				armed    atomic.Bool // after the presence challenges: the next signals are the transfer's
			)
			defer mitmErrs.check(t)
			mitm := newWSMITM(t, ts.URL, mitmOpts{
				UpText: func(b []byte) []byte {
					if m, ok := decodeSignal(b); ok && armed.Load() && !presenceSized(m) {
						mu.Lock()
						if ownOffer == nil {
							ownOffer, _ = protocol.DecodeB64(m.Data)
						}
						mu.Unlock()
					}
					return b
				},
				DownText: func(b []byte) []byte {
					m, ok := decodeSignal(b)
					if !ok || !armed.Load() || presenceSized(m) {
						return b
					}
					mu.Lock()
					defer mu.Unlock()
					if done {
						return b
					}
					done = true
					data, err := protocol.DecodeB64(m.Data)
					if err != nil || ownOffer == nil {
						mitmErrs.add(errors.Join(errors.New("answer before the offer, or undecodable"), err))
						return b
					}
					m.Data = protocol.EncodeB64(tc.edit(data, ownOffer))
					out, err := protocol.Encode(m)
					if err != nil {
						mitmErrs.add(err)
						return b
					}
					close(tampered)
					return out
				},
			})
			sender := dialHostile(ctx, t, secret.Link(mitm.HTTP.URL), "sender", nil)
			recv := dialHostile(ctx, t, secret.Link(ts.URL), "receiver", nil)
			meshVerified(ctx, t, sender.peer, recv.peer)
			armed.Store(true)
			src := t.TempDir()

			path1, _ := makeFile(t, src, "refused.bin", 3*protocol.ChunkSize+77, "")
			rep, err := sender.SendFile(ctx, path1)
			select {
			case <-tampered:
			default:
				t.Fatalf("the man in the middle never saw the answer (SendFile: %v)", err)
			}
			switch {
			case err == nil:
				t.Fatalf("SendFile over tampered signalling succeeded: %+v", rep)
			case !errors.Is(err, client.ErrFileLost):
				t.Fatalf("SendFile: %v; want an error wrapping client.ErrFileLost", err)
			case rep == nil:
				t.Fatalf("SendFile: %v, and no report", err)
			}
			why := rep.Failed[recv.ID()]
			if !strings.Contains(why, client.ErrSignalAuth.Error()) {
				t.Errorf("report says %q for the receiver, want it to name the refusal (%q)", why, client.ErrSignalAuth)
			}
			if len(rep.Delivered) != 0 || len(rep.Paths) != 0 {
				t.Errorf("report claims delivery: delivered %v, paths %v", rep.Delivered, rep.Paths)
			}
			t.Logf("refused: %v; receiver: %s", err, why)
			// The session itself ended on the refusal (not on a timeout).
			if errs := loggedErrorsWrapping(sender, client.ErrICE); len(errs) != 0 {
				t.Errorf("sender waited for ICE instead of refusing at once: %v", errs)
			}
			if got := authRefusals(sender); len(got) != 1 {
				t.Errorf("sender logged %d signal refusals, want exactly 1 (the tampered answer): %v", len(got), got)
			}

			// The client still works: the next send (untouched) goes direct.
			path2, sum2 := makeFile(t, src, "after.bin", 2*protocol.ChunkSize+5, "")
			sendDirect(ctx, t, sender, path2, recv)
			// Receptions are reported in order: the first file the receiver
			// reports is the second one, so the refused one never arrived.
			f := nextFile(ctx, t, recv.peer)
			if f.Err != nil || f.Name != "after.bin" || f.SHA256 != sum2 || fileSHA256(t, f.Path) != sum2 {
				t.Fatalf("receiver reported %+v first, want after.bin intact (SHA-256 %s)", f, sum2)
			}

			// No byte of the refused file flowed: no progress on either side,
			// no partial file, nothing through the relay either.
			if ps := progressWith(recv.peer, func(p client.Progress) bool { return p.File == rep.File }); len(ps) != 0 {
				t.Errorf("receiver reported progress on the refused file: %+v", ps)
			}
			if ps := progressWith(sender.peer, func(p client.Progress) bool { return p.File == rep.File }); len(ps) != 0 {
				t.Errorf("sender reported progress on the refused file: %+v", ps)
			}
			if got := visibleFiles(t, recv.dir); !slices.Equal(got, []string{"after.bin"}) {
				t.Errorf("receiver's directory holds %q, want only after.bin", got)
			}
			if got := partFiles(t, recv.dir); len(got) != 0 {
				t.Errorf("receiver holds partial files %q", got)
			}
			if st := ts.Store.Stats(); st.Bytes != 0 || st.Items != 0 {
				t.Errorf("relay store holds %+v", st)
			}
		})
	}
}

// announcement is a member's public key and MAC, base64url as on the wire.
type announcement struct{ pub, mac string }

// freshPub returns a new valid P-256 public key (uncompressed, 65 bytes) —
// one the server holds the private key of.
func freshPub() ([]byte, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return k.PublicKey().Bytes(), nil
}

// TestHostileSwappedMemberKey: the server swaps another member's ECDH public
// key (in the victim's welcome, or in the presence announcing the member)
// for one of its own, keeping the MAC or forging one it can make. The
// victim must ignore that member altogether: it is not in Members(), a send
// does not go to it (ErrNoMembers when it is the only one online), its
// offers are refused, and nothing is delivered either way. A third member,
// announced untouched, works throughout.
func TestHostileSwappedMemberKey(t *testing.T) {
	otherRoom := crypto.DeriveRoom(newSecret(t)) // keys the server could have
	cases := []struct {
		name      string
		inWelcome bool // else in presence{join}
		forge     func(member string, orig, victim announcement) (announcement, error)
	}{
		{name: "welcome: fresh key, original MAC", inWelcome: true, forge: func(_ string, orig, _ announcement) (announcement, error) {
			pub, err := freshPub()
			return announcement{protocol.EncodeB64(pub), orig.mac}, err
		}},
		{name: "welcome: fresh key, MAC under another room's key", inWelcome: true, forge: func(member string, _, _ announcement) (announcement, error) {
			pub, err := freshPub()
			return announcement{protocol.EncodeB64(pub), protocol.EncodeB64(otherRoom.Announce(member, pub))}, err
		}},
		{name: "welcome: the victim's own announcement", inWelcome: true, forge: func(_ string, _, victim announcement) (announcement, error) {
			return victim, nil
		}},
		{name: "presence: fresh key, original MAC", forge: func(_ string, orig, _ announcement) (announcement, error) {
			pub, err := freshPub()
			return announcement{protocol.EncodeB64(pub), orig.mac}, err
		}},
		{name: "presence: fresh key, MAC under another room's key", forge: func(member string, _, _ announcement) (announcement, error) {
			pub, err := freshPub()
			return announcement{protocol.EncodeB64(pub), protocol.EncodeB64(otherRoom.Announce(member, pub))}, err
		}},
		{name: "presence: fresh key, random MAC", forge: func(_ string, _, _ announcement) (announcement, error) {
			pub, err := freshPub()
			mac := make([]byte, protocol.MACLen)
			_, _ = rand.Read(mac)
			return announcement{protocol.EncodeB64(pub), protocol.EncodeB64(mac)}, err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			ts := newServer(t, serverOpts{})
			secret := newSecret(t)
			var (
				mitmErrs errLog
				mu       sync.Mutex
				victim   announcement // the victim's own, from its join
				done     bool
				swapped  = make(chan string, 1) // the member whose key was swapped
			)
			defer mitmErrs.check(t)
			// rewrite swaps the first member announcement the victim gets.
			rewrite := func(id string, a *announcement) {
				forged, err := tc.forge(id, *a, victim)
				if err != nil {
					mitmErrs.add(err)
					return
				}
				*a = forged
				done = true
				swapped <- id
			}
			mitm := newWSMITM(t, ts.URL, mitmOpts{
				UpText: func(b []byte) []byte {
					if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypeJoin {
						mu.Lock()
						victim = announcement{m.Pub, m.MAC}
						mu.Unlock()
					}
					return b
				},
				DownText: func(b []byte) []byte {
					m, err := protocol.Decode(b)
					if err != nil {
						return b
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case done:
						return b
					case tc.inWelcome && m.Type == protocol.TypeWelcome && len(m.Members) > 0:
						a := announcement{m.Members[0].Pub, m.Members[0].MAC}
						rewrite(m.Members[0].Member, &a)
						m.Members[0].Pub, m.Members[0].MAC = a.pub, a.mac
					case !tc.inWelcome && m.Type == protocol.TypePresence && m.Event == protocol.EventJoin:
						a := announcement{m.Pub, m.MAC}
						rewrite(m.Member, &a)
						m.Pub, m.MAC = a.pub, a.mac
					default:
						return b
					}
					out, err := protocol.Encode(m)
					if err != nil {
						mitmErrs.add(err)
						return b
					}
					return out
				},
			})
			direct := secret.Link(ts.URL)
			// Bob's offers to alice must give up soon: she never answers.
			bobOpts := func(o *client.Options) { o.ICETimeout = 2 * time.Second }
			var alice, bob *hostilePeer
			if tc.inWelcome { // bob is in alice's welcome
				bob = dialHostile(ctx, t, direct, "bob", bobOpts)
				alice = dialHostile(ctx, t, secret.Link(mitm.HTTP.URL), "alice", nil)
			} else { // bob is announced to alice by presence
				alice = dialHostile(ctx, t, secret.Link(mitm.HTTP.URL), "alice", nil)
				bob = dialHostile(ctx, t, direct, "bob", bobOpts)
			}
			// Carol, announced to alice after bob and untouched: once alice
			// sees her, alice has handled bob's announcement too.
			carol := dialHostile(ctx, t, direct, "carol", nil)
			waitOnline(ctx, t, alice.peer, carol.ID())
			waitOnline(ctx, t, bob.peer, alice.ID(), carol.ID())
			waitOnline(ctx, t, carol.peer, alice.ID(), bob.ID())
			select {
			case id := <-swapped:
				if id != bob.ID() {
					t.Fatalf("the man in the middle swapped the key of %s, want bob (%s)", id, bob.ID())
				}
			default:
				t.Fatal("the man in the middle swapped no key")
			}

			// 1. Alice ignores bob.
			var ids []string
			for _, m := range alice.Members() {
				ids = append(ids, m.ID)
			}
			if !slices.Equal(ids, []string{carol.ID()}) {
				t.Fatalf("alice's members %v, want only carol %s (bob %s must be ignored)", ids, carol.ID(), bob.ID())
			}

			src := t.TempDir()
			// 2. Alice's send goes to carol only.
			pathA, sumA := makeFile(t, src, "from-alice.bin", 2*protocol.ChunkSize+3, "")
			sendDirect(ctx, t, alice, pathA, carol)
			if f := nextFile(ctx, t, carol.peer); f.Err != nil || f.Name != "from-alice.bin" || f.SHA256 != sumA {
				t.Fatalf("carol received %+v, want from-alice.bin", f)
			}

			// 3. Bob's offer to alice is refused (she cannot open it without
			// his key, and would not trust it); carol gets his file.
			pathB, sumB := makeFile(t, src, "from-bob.bin", 2*protocol.ChunkSize+9, "")
			rep, err := bob.SendFile(ctx, pathB)
			if !errors.Is(err, client.ErrFileLost) {
				t.Fatalf("bob's SendFile: %v; want client.ErrFileLost (alice refuses him)", err)
			}
			if rep.Paths[carol.ID()] != "direct" || rep.Paths[alice.ID()] != "" {
				t.Fatalf("bob's send paths %v, want carol direct and nothing to alice", rep.Paths)
			}
			if why := rep.Failed[alice.ID()]; !strings.Contains(why, client.ErrICE.Error()) {
				t.Errorf("bob's report for alice: %q, want the failed connection (%q)", why, client.ErrICE)
			}
			if f := nextFile(ctx, t, carol.peer); f.Err != nil || f.Name != "from-bob.bin" || f.SHA256 != sumB {
				t.Fatalf("carol received %+v, want from-bob.bin", f)
			}
			refused := 0
			for _, r := range alice.logs.snapshot() {
				if r.Level >= slog.LevelWarn && r.Attrs["from"] == bob.ID() && strings.Contains(r.Msg, "unverified") {
					refused++
				}
			}
			if refused == 0 {
				t.Errorf("alice logged no refusal of bob's signals")
			}

			// 4. Carol's file reaches both: it is the first file alice and
			// bob report, so nothing passed between them before.
			pathC, sumC := makeFile(t, src, "from-carol.bin", protocol.ChunkSize+1, "")
			sendDirect(ctx, t, carol, pathC, alice, bob)
			for _, p := range []*hostilePeer{alice, bob} {
				if f := nextFile(ctx, t, p.peer); f.Err != nil || f.Name != "from-carol.bin" || f.SHA256 != sumC {
					t.Fatalf("%s reported %+v first, want from-carol.bin", p.name, f)
				}
				if got := visibleFiles(t, p.dir); !slices.Equal(got, []string{"from-carol.bin"}) {
					t.Errorf("%s's directory holds %q, want only from-carol.bin", p.name, got)
				}
				if got := partFiles(t, p.dir); len(got) != 0 {
					t.Errorf("%s holds partial files %q", p.name, got)
				}
			}
			if ps := progressWith(alice.peer, func(p client.Progress) bool { return p.Peer == bob.ID() }); len(ps) != 0 {
				t.Errorf("alice reported transfers with bob: %+v", ps)
			}
			if ps := progressWith(bob.peer, func(p client.Progress) bool { return p.Peer == alice.ID() && !p.Sending }); len(ps) != 0 {
				t.Errorf("bob received from alice: %+v", ps)
			}
			if ps := progressWith(bob.peer, func(p client.Progress) bool { return p.Peer == alice.ID() && p.Sending && p.Bytes > 0 }); len(ps) != 0 {
				t.Errorf("bob sent bytes to alice: %+v", ps)
			}

			// 5. With carol offline, bob is no recipient for alice at all.
			if err := carol.Close(); err != nil {
				t.Fatalf("carol closes: %v", err)
			}
			waitPresence(ctx, t, alice.peer, carol.ID(), protocol.EventOffline, 1)
			sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if rep, err := alice.SendFile(sctx, pathA); !errors.Is(err, client.ErrNoMembers) {
				t.Fatalf("alice's SendFile with only bob (swapped key) online: %v (report %+v); want client.ErrNoMembers", err, rep)
			}
		})
	}
}

// presenceSized reports whether a sealed signal is small enough to be a
// presence ping or pong (a nonce and a kind; an SDP offer or answer and an
// ICE candidate are larger). The taps below leave those alone: a reconnect
// under load makes the members challenge each other again at any moment.
func presenceSized(m *protocol.Message) bool {
	data, err := protocol.DecodeB64(m.Data)
	return err == nil && len(data) < 120
}

// signalTap sits in a man in the middle on one client's connection. It
// records the signal frames the server delivers to the client and counts the
// ones the client sends; once armed, it injects frames in front of the next
// server->client text frame.
type signalTap struct {
	mu       sync.Mutex
	down     [][]byte // delivered signal frames, verbatim
	up       int      // signals the client sent
	inject   [][]byte
	injected chan struct{}
}

func newSignalTap() *signalTap { return &signalTap{injected: make(chan struct{})} }

func (s *signalTap) opts() mitmOpts {
	return mitmOpts{
		UpText: func(b []byte) []byte {
			if m, ok := decodeSignal(b); ok && !presenceSized(m) {
				s.mu.Lock()
				s.up++
				s.mu.Unlock()
			}
			return b
		},
		DownTextN: func() frameTransform {
			return func(b []byte) [][]byte {
				s.mu.Lock()
				defer s.mu.Unlock()
				out := [][]byte{b}
				if s.inject != nil {
					out = append(s.inject, b)
					s.inject = nil
					close(s.injected)
				}
				if m, ok := decodeSignal(b); ok && !presenceSized(m) {
					s.down = append(s.down, bytes.Clone(b))
				}
				return out
			}
		},
	}
}

// reset forgets what was recorded so far.
func (s *signalTap) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = nil
}

func (s *signalTap) recorded() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.down)
}

func (s *signalTap) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

func (s *signalTap) arm(frames [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject = slices.Clone(frames)
}

// TestHostileReplayedSignal: the server records the sealed signals of a
// successful peer-to-peer transfer from alice to bob and later delivers them
// again — the old offer (or the whole old session) to bob, or bob's old
// offer to carol, who joined since. The victim must refuse every replayed
// signal (ErrSignalAuth; for bob because its counter is old, for carol
// because it was not sealed for her), answer none of them, receive nothing;
// and a later legitimate transfer works.
func TestHostileReplayedSignal(t *testing.T) {
	cases := []struct {
		name   string
		carol  bool                        // the victim is carol, else bob
		frames func(rec [][]byte) [][]byte // what to replay of bob's recorded signals
		cause  error                       // what the refusal must name
	}{
		{name: "old offer to its recipient", frames: func(rec [][]byte) [][]byte { return rec[:1] }, cause: crypto.ErrReplay},
		{name: "whole old session to its recipient", frames: func(rec [][]byte) [][]byte { return rec }, cause: crypto.ErrReplay},
		{name: "old offer to another member", carol: true, frames: func(rec [][]byte) [][]byte { return rec[:1] }, cause: crypto.ErrOpen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			ts := newServer(t, serverOpts{})
			secret := newSecret(t)
			bobTap, carolTap := newSignalTap(), newSignalTap()
			bobMITM := newWSMITM(t, ts.URL, bobTap.opts())
			carolMITM := newWSMITM(t, ts.URL, carolTap.opts())
			alice := dialHostile(ctx, t, secret.Link(ts.URL), "alice", nil)
			bob := dialHostile(ctx, t, secret.Link(bobMITM.HTTP.URL), "bob", nil)
			// The presence challenges first: what is recorded is the transfer.
			meshVerified(ctx, t, alice.peer, bob.peer)
			bobTap.reset()
			src := t.TempDir()

			// A first transfer, recorded.
			path1, sum1 := makeFile(t, src, "first.bin", 2*protocol.ChunkSize+11, "")
			sendDirect(ctx, t, alice, path1, bob)
			if f := nextFile(ctx, t, bob.peer); f.Err != nil || f.Name != "first.bin" || f.SHA256 != sum1 {
				t.Fatalf("bob received %+v, want first.bin", f)
			}
			rec := bobTap.recorded()
			if len(rec) < 2 { // the offer and at least one candidate
				t.Fatalf("recorded %d signals to bob, want the offer and its candidates", len(rec))
			}
			// Carol joins after the recorded session: her counter from alice
			// is still 0, so only the recipient binding can stop the replay.
			carol := dialHostile(ctx, t, secret.Link(carolMITM.HTTP.URL), "carol", nil)
			meshVerified(ctx, t, alice.peer, bob.peer, carol.peer)
			// Both greet the newcomer with the library entry they hold
			// (a lib signal each): those are not reactions to the replay.
			waitHolders(ctx, t, carol.peer, "first.bin", alice.ID(), bob.ID())
			victim, tap := bob, bobTap
			if tc.carol {
				victim, tap = carol, carolTap
			}
			frames := tc.frames(rec)
			progBefore := len(victim.progress.snapshot())
			sentBefore := tap.sent()
			refusedBefore := len(authRefusals(victim))
			endedBefore := sessionsEnded(victim)

			// Replay, then a chat from alice: once the victim shows the chat,
			// it has handled the replayed frames (one read loop, in order).
			tap.arm(frames)
			carrier := randomMarker("carrier")
			if err := alice.SendChat(ctx, carrier); err != nil {
				t.Fatalf("alice's chat: %v", err)
			}
			waitChat(ctx, t, victim.peer, "carrier", func(c client.Chat) bool { return c.Text == carrier })
			select {
			case <-tap.injected:
			default:
				t.Fatal("nothing was replayed")
			}
			// A chat back: once alice has it, the man in the middle has seen
			// everything the victim sent before it (an answer, say).
			sentinel := randomMarker("sentinel")
			if err := victim.SendChat(ctx, sentinel); err != nil {
				t.Fatalf("%s's chat: %v", victim.name, err)
			}
			waitChat(ctx, t, alice.peer, "sentinel", func(c client.Chat) bool { return c.Text == sentinel })

			refused := authRefusals(victim)[refusedBefore:]
			if len(refused) != len(frames) {
				t.Errorf("%s refused %d of %d replayed signals: %v", victim.name, len(refused), len(frames), refused)
			}
			for _, err := range refused {
				if !strings.Contains(err.Error(), tc.cause.Error()) {
					t.Errorf("refusal %q does not name %q", err, tc.cause)
				}
			}
			// A confirmed session is not the replay's to end (the server
			// could otherwise cut any link at will).
			if n := sessionsEnded(victim) - endedBefore; n != 0 {
				t.Errorf("%s ended %d sessions on the replay", victim.name, n)
			}
			if n := tap.sent() - sentBefore; n != 0 {
				t.Errorf("%s sent %d signals in reaction to the replay (an answer to the old offer?)", victim.name, n)
			}
			if ps := victim.progress.snapshot()[progBefore:]; len(ps) != 0 {
				t.Errorf("%s reported progress after the replay: %+v", victim.name, ps)
			}
			want := []string{"first.bin"}
			if tc.carol {
				want = nil
			}
			if got := visibleFiles(t, victim.dir); !slices.Equal(got, want) {
				t.Errorf("%s's directory holds %q, want %q", victim.name, got, want)
			}
			if got := partFiles(t, victim.dir); len(got) != 0 {
				t.Errorf("%s holds partial files %q after the replay", victim.name, got)
			}

			// A legitimate transfer afterwards works, directly, for both.
			path2, sum2 := makeFile(t, src, "second.bin", protocol.ChunkSize+3, "")
			sendDirect(ctx, t, alice, path2, bob, carol)
			for _, p := range []*hostilePeer{bob, carol} {
				if f := nextFile(ctx, t, p.peer); f.Err != nil || f.Name != "second.bin" || f.SHA256 != sum2 {
					t.Fatalf("%s received %+v, want second.bin", p.name, f)
				}
			}
			if st := ts.Store.Stats(); st.Bytes != 0 {
				t.Errorf("relay store holds %+v", st)
			}
		})
	}
}

// TestHostileDirectPathControl is the positive control of the tests above:
// with the man in the middle passing everything through, a p2p transfer
// connects (key confirmation over both DTLS fingerprints passes), takes the
// direct path, and reports it on both sides; no refusal is logged; and the
// signals the server forwarded do not show it the SDP or any address.
func TestHostileDirectPathControl(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	secret := newSecret(t)
	var mu sync.Mutex
	var signals [][]byte // decoded data of every signal, both ways
	tap := func(b []byte) []byte {
		if m, ok := decodeSignal(b); ok {
			if d, err := protocol.DecodeB64(m.Data); err == nil {
				mu.Lock()
				signals = append(signals, d)
				mu.Unlock()
			}
		}
		return b
	}
	mitm := newWSMITM(t, ts.URL, mitmOpts{UpText: tap, DownText: tap})
	sender := dialHostile(ctx, t, secret.Link(mitm.HTTP.URL), "sender", nil)
	recv := dialHostile(ctx, t, secret.Link(mitm.HTTP.URL), "receiver", nil)
	meshOnline(ctx, t, sender.peer, recv.peer)
	path, sum := makeFile(t, t.TempDir(), "clip.mp4", 3<<20+17, "")
	rep := sendDirect(ctx, t, sender, path, recv)
	f := nextFile(ctx, t, recv.peer)
	if f.Err != nil || f.SHA256 != sum || fileSHA256(t, f.Path) != sum {
		t.Fatalf("received %+v, want SHA-256 %s", f, sum)
	}
	ps := progressWith(recv.peer, func(p client.Progress) bool { return p.File == rep.File })
	if len(ps) == 0 || !ps[len(ps)-1].Done {
		t.Fatalf("receiver's progress %+v, want reports ending with done", ps)
	}
	for _, p := range ps {
		if p.Path != "direct" || p.Peer != sender.ID() {
			t.Fatalf("receiver's progress %+v, want path direct from the sender", p)
		}
	}
	for _, p := range []*hostilePeer{sender, recv} {
		for _, target := range []error{client.ErrSignalAuth, client.ErrKeyConfirm} {
			if errs := loggedErrorsWrapping(p, target); len(errs) != 0 {
				t.Errorf("%s logged %v", p.name, errs)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(signals) < 4 { // offer, answer, a candidate each way
		t.Fatalf("the server forwarded %d signals; want the offer, the answer and candidates", len(signals))
	}
	leaks := [][]byte{[]byte("a=fingerprint"), []byte("sha-256"), []byte("candidate"), []byte("ice-ufrag"), []byte("127.0.0.1"), []byte("typ host")}
	for _, s := range signals {
		if found := containsAny(s, leaks); len(found) != 0 {
			t.Fatalf("a forwarded signal shows the server %q", found)
		}
	}
	if st := ts.Store.Stats(); st.Bytes != 0 || st.Items != 0 {
		t.Errorf("relay store holds %+v after a direct transfer", st)
	}
}

// TestHostileHonestServerNoRefusals is the control for the refusals above:
// through an honest server a client never refuses a signal, whatever the
// timing of offers, answers and trickled ICE candidates. Three rooms run at
// once, and in each the two members send to each other at the same time,
// round after round, so signals of both roles are sealed while candidates
// trickle in. A refusal here means the client itself put its sealed signals
// on the wire out of counter order: the peer then takes an honest signal for
// a replay, aborts the session, and the user is told the server tampered.
func TestHostileHonestServerNoRefusals(t *testing.T) {
	const rooms, rounds = 3, 16
	for r := range rooms {
		t.Run(fmt.Sprintf("room %d", r), func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			ts := newServer(t, serverOpts{})
			link := newSecret(t).Link(ts.URL)
			alice := dialHostile(ctx, t, link, "alice", nil)
			bob := dialHostile(ctx, t, link, "bob", nil)
			meshOnline(ctx, t, alice.peer, bob.peer)
			src := t.TempDir()
			pathA, sumA := makeFile(t, src, "from-alice.bin", 1000, "")
			pathB, sumB := makeFile(t, src, "from-bob.bin", 2000, "")
			failed := 0
			for i := range rounds {
				resA, resB := sendAsync(ctx, alice.peer, pathA), sendAsync(ctx, bob.peer, pathB)
				for _, x := range []struct {
					from, to *hostilePeer
					res      <-chan sendResult
					sum      string
				}{{alice, bob, resA, sumA}, {bob, alice, resB, sumB}} {
					r := awaitSend(ctx, t, x.res)
					if r.err != nil {
						failed++
						var why map[string]string
						if r.rep != nil {
							why = r.rep.Failed
						}
						t.Logf("round %d, %s to %s: %v %v", i, x.from.name, x.to.name, r.err, why)
						continue
					}
					if f := nextFile(ctx, t, x.to.peer); f.Err != nil || f.SHA256 != x.sum {
						t.Fatalf("round %d: %s received %+v, want SHA-256 %s", i, x.to.name, f, x.sum)
					}
				}
			}
			for _, p := range []*hostilePeer{alice, bob} {
				if errs := authRefusals(p); len(errs) != 0 {
					t.Errorf("%s refused %d signals of an honest peer through an honest server (%d of %d transfers failed): %v",
						p.name, len(errs), failed, 2*rounds, errs)
				}
			}
		})
	}
}
