package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// chatBody is the plaintext of a chat envelope (docs/PROTOCOL.md).
type chatBody struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
	protocol.Stamp
	Pad string `json:"pad"` // spaces, always present: the JSON is a multiple of chatPadTo bytes
}

// chatPadTo hides a message's exact length from the relay.
const chatPadTo = 256

func chatPlaintext(text string, st protocol.Stamp) ([]byte, error) {
	body := chatBody{Kind: "chat", Text: text, Stamp: st}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	// b already holds an empty "pad" field; spaces inside it cost one byte each.
	body.Pad = strings.Repeat(" ", (chatPadTo-len(b)%chatPadTo)%chatPadTo)
	return json.Marshal(body)
}

// MaxChatBytes bounds one chat message's text.
const MaxChatBytes = 16 << 10

// sendChat seals text under a fresh message key and hands it to the relay,
// which owes it to every known member, online or not.
func (r *room) sendChat(ctx context.Context, text string) error {
	if len(text) > MaxChatBytes {
		return fmt.Errorf("chat message of %d bytes over the %d-byte limit: %w", len(text), MaxChatBytes, ErrProtocol)
	}
	body, err := chatPlaintext(text, r.nextStamp())
	if err != nil {
		return err
	}
	id, sealed, err := r.keys.SealEnvelope(crypto.EnvelopeMeta{Sender: r.id}, body)
	if err != nil {
		return fmt.Errorf("chat: seal: %w", err)
	}
	r.markSeen(id) // a newcomer's history may echo it
	r.remember(r.id, sealed)
	// Queued while disconnected, and written again if the connection breaks
	// under the write or soon after it (resend.go): the same sealed
	// envelope, whose id receivers deduplicate, so it arrives once.
	msg := &protocol.Message{Type: protocol.TypeMsg, Data: protocol.EncodeB64(sealed)}
	for {
		if err := r.waitConnected(ctx); err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		if err := r.waitRejoined(ctx); err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		if err := r.waitResent(ctx); err != nil {
			return err
		}
		gen := r.connGeneration()
		err := r.writeJSON(msg)
		if err == nil {
			r.noteSent(gen, time.Now(), msg) // written again if this connection breaks
			return nil
		}
		if !errors.Is(err, ErrUnreachable) {
			return err
		}
		if err := r.waitNewConn(ctx, gen); err != nil {
			return fmt.Errorf("chat: %w", err)
		}
	}
}

// handleEnvelope opens a relay envelope (chat or file manifest), handles it
// once, and acks it.
func (r *room) handleEnvelope(m *protocol.Message) error {
	sealed, err := protocol.DecodeB64(m.Data)
	if err != nil || m.From == "" || m.ID == 0 {
		r.log.Warn("dropping malformed envelope from server")
		return nil
	}
	if !r.isMember(m.From) {
		r.log.Warn("envelope from an unknown member; acking and dropping", "from", m.From)
		return r.ack(m.ID)
	}
	meta := crypto.EnvelopeMeta{Sender: m.From, File: m.File, Chunks: m.Chunks}
	if m.File != "" {
		return r.events.manifest(m, meta, sealed)
	}
	id, plain, err := r.keys.OpenEnvelope(meta, sealed)
	if err != nil {
		r.log.Warn("envelope failed to open; dropping", "from", m.From, "err", err)
		return r.ack(m.ID)
	}
	if r.markSeen(id) && r.chat(m.From, id, plain) {
		r.remember(m.From, sealed)
	}
	return r.ack(m.ID)
}

// judge records a stamped message from member and returns its verdict, and
// false when it is to be dropped (a duplicate, or a replay: said in the log).
func (r *room) judge(from string, st protocol.Stamp, what string) (protocol.Judgement, bool) {
	r.mu.Lock()
	j := r.order.Judge(from, st)
	r.mu.Unlock()
	switch j.Verdict {
	case protocol.Duplicate:
		return j, false
	case protocol.Replayed:
		r.log.Warn(what+" sealed before this member joined (a replay by the server?); dropping",
			"from", from, "sent", time.UnixMilli(st.Time))
		return j, false
	}
	return j, true
}

// sealManifest seals man for the room with a fresh stamp of this member.
func (c *Client) sealManifest(man *crypto.Manifest) ([]byte, error) {
	_, sealed, err := c.sealStamped(man)
	return sealed, err
}

// sealStamped seals man with a fresh stamp and returns the stamped copy.
func (c *Client) sealStamped(man *crypto.Manifest) (*crypto.Manifest, []byte, error) {
	st := c.room.nextStamp()
	m := *man
	m.Sess, m.Seq, m.TS = st.Session, st.Seq, st.Time
	sealed, err := c.keys.SealManifest(c.id, &m)
	return &m, sealed, err
}

// chat judges an opened chat message by its stamp (docs/SECURITY.md,
// "Replay and order") and hands it on: a duplicate or a replay is dropped,
// a gap before it or its lateness is said.
func (r *room) chat(from string, id [16]byte, plain []byte) bool {
	var body chatBody
	if err := json.Unmarshal(plain, &body); err != nil || body.Kind != "chat" {
		r.log.Warn("envelope with unknown content; dropping", "from", from)
		return false
	}
	if err := body.Stamp.Validate(); err != nil {
		r.log.Warn("chat message without a valid stamp; dropping", "from", from, "err", err)
		return false
	}
	j, ok := r.judge(from, body.Stamp, "chat message")
	if !ok {
		return false
	}
	if r.opts.OnChat != nil {
		r.opts.OnChat(Chat{From: from, Name: r.nameOf(from), Text: body.Text, ID: hex.EncodeToString(id[:]),
			Sent: time.UnixMilli(body.Time), Late: j.Verdict == protocol.Late, Missing: j.Missing})
	}
	return true
}

// setName keeps the display name a member sent in a name signal (as sent:
// the printer cleans it).
func (r *room) setName(member, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names = make(map[string]string)
	}
	r.names[member] = name
}

// nameOf is the display name member sent, or "".
func (r *room) nameOf(member string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.names[member]
}

// markSeen records an envelope id and reports whether it was new.
func (r *room) markSeen(id [16]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[id] {
		return false
	}
	r.seen[id] = true
	return true
}

func (r *room) isMember(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.members[id]
	return ok
}
