package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"cloakroom/internal/crypto"
	"cloakroom/internal/protocol"
)

// chatBody is the plaintext of a chat envelope (docs/PROTOCOL.md).
type chatBody struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
	Pad  string `json:"pad"` // spaces, always present: the JSON is a multiple of chatPadTo bytes
}

// chatPadTo hides a message's exact length from the relay.
const chatPadTo = 256

func chatPlaintext(text string) ([]byte, error) {
	body := chatBody{Kind: "chat", Text: text}
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

// SendChat seals text under a fresh message key and hands it to the relay,
// which owes it to every known member, online or not.
func (c *Client) SendChat(ctx context.Context, text string) error {
	if len(text) > MaxChatBytes {
		return fmt.Errorf("chat message of %d bytes over the %d-byte limit: %w", len(text), MaxChatBytes, ErrProtocol)
	}
	body, err := chatPlaintext(text)
	if err != nil {
		return err
	}
	_, sealed, err := c.keys.SealEnvelope(crypto.EnvelopeMeta{Sender: c.id}, body)
	if err != nil {
		return fmt.Errorf("chat: seal: %w", err)
	}
	// Queued while disconnected, and written again if the connection breaks
	// under the write: the same sealed envelope, whose id receivers
	// deduplicate, so it arrives once.
	msg := &protocol.Message{Type: protocol.TypeMsg, Data: protocol.EncodeB64(sealed)}
	for {
		if err := c.waitConnected(ctx); err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		if err := c.waitRejoined(ctx); err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		gen := c.connGeneration()
		err := c.writeJSON(msg)
		if err == nil || !errors.Is(err, ErrUnreachable) {
			return err
		}
		if err := c.waitNewConn(ctx, gen); err != nil {
			return fmt.Errorf("chat: %w", err)
		}
	}
}

// handleEnvelope opens a relay envelope (chat or file manifest), handles it
// once, and acks it.
func (c *Client) handleEnvelope(m *protocol.Message) error {
	sealed, err := protocol.DecodeB64(m.Data)
	if err != nil || m.From == "" || m.ID == 0 {
		c.log.Warn("dropping malformed envelope from server")
		return nil
	}
	if !c.isMember(m.From) {
		c.log.Warn("envelope from an unknown member; acking and dropping", "from", m.From)
		return c.ack(m.ID)
	}
	meta := crypto.EnvelopeMeta{Sender: m.From, File: m.File, Chunks: m.Chunks}
	if m.File != "" {
		return c.handleManifest(m, meta, sealed)
	}
	id, plain, err := c.keys.OpenEnvelope(meta, sealed)
	if err != nil {
		c.log.Warn("envelope failed to open; dropping", "from", m.From, "err", err)
		return c.ack(m.ID)
	}
	if c.markSeen(id) {
		var body chatBody
		if err := json.Unmarshal(plain, &body); err != nil || body.Kind != "chat" {
			c.log.Warn("envelope with unknown content; dropping", "from", m.From)
		} else if c.opts.OnChat != nil {
			c.opts.OnChat(Chat{From: m.From, Text: body.Text, ID: hex.EncodeToString(id[:])})
		}
	}
	return c.ack(m.ID)
}

// markSeen records an envelope id and reports whether it was new.
func (c *Client) markSeen(id [16]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[id] {
		return false
	}
	c.seen[id] = true
	return true
}

func (c *Client) isMember(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.members[id]
	return ok
}
