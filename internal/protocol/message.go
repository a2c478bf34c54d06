package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid message")

// Message is one JSON control message. Which fields are allowed and required
// depends on Type; Validate enforces it. Byte strings are base64url without
// padding; member and file ids are lower-case UUID strings.
type Message struct {
	Type string `json:"t"`
	V    int    `json:"v,omitempty"`

	Room     string `json:"room,omitempty"`     // join: room id (16 bytes)
	Verifier string `json:"verifier,omitempty"` // join: room verifier (32 bytes)
	Member   string `json:"member,omitempty"`   // join, welcome, presence, delivered...
	Pub      string `json:"pub,omitempty"`      // join, presence: ECDH P-256 public key (65 bytes)
	MAC      string `json:"mac,omitempty"`      // join, presence: announcement MAC (32 bytes)

	From string `json:"from,omitempty"` // server->client msg, signal
	To   string `json:"to,omitempty"`   // client->server signal
	Data string `json:"data,omitempty"` // sealed payload: signal, msg, file

	ID  uint64   `json:"id,omitempty"`  // server->client msg: relay item id
	IDs []uint64 `json:"ids,omitempty"` // ack

	File       string   `json:"file,omitempty"`       // file, file_ok, msg(manifest), progress...
	Chunks     uint32   `json:"chunks,omitempty"`     // file, msg(manifest)
	Acked      uint32   `json:"acked,omitempty"`      // progress
	Recipients []string `json:"recipients,omitempty"` // file_ok

	Event   string       `json:"event,omitempty"`   // presence
	Online  bool         `json:"online,omitempty"`  // presence (join)
	Members []MemberInfo `json:"members,omitempty"` // welcome
	TTL     int          `json:"ttl,omitempty"`     // welcome: relay TTL in seconds
	ICE     []ICEServer  `json:"ice,omitempty"`     // welcome, turn: TURN servers with credentials
	Expires int64        `json:"expires,omitempty"` // welcome, turn: unix time the ICE credentials expire

	Code  string `json:"code,omitempty"`  // error
	Error string `json:"error,omitempty"` // error, undeliverable: human-readable reason
}

// MemberInfo describes one member in a welcome.
type MemberInfo struct {
	Member string `json:"member"`
	Pub    string `json:"pub"`
	MAC    string `json:"mac"`
	Online bool   `json:"online"`
}

// ICEServer is a STUN/TURN server with credentials, shaped like WebRTC's
// RTCIceServer so a browser can use it as it is.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Decode parses and validates one control message from untrusted bytes.
func Decode(data []byte) (*Message, error) {
	if len(data) > MaxControlBytes {
		return nil, fmt.Errorf("decode: %d bytes over limit %d: %w", len(data), MaxControlBytes, ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Message
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode: %v: %w", err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decode: trailing data: %w", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Encode validates m and returns its JSON form.
func Encode(m *Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Type, err)
	}
	if len(b) > MaxControlBytes {
		return nil, fmt.Errorf("encode %s: %d bytes over limit: %w", m.Type, len(b), ErrInvalid)
	}
	return b, nil
}

// Error builds an error message.
func Error(code, text string) *Message {
	return &Message{Type: TypeError, Code: code, Error: text}
}

// ValidID reports whether s is a lower-case UUID string (member and file
// ids): 8-4-4-4-12 lower-case hex digits. (A loop, not a regexp: every
// frame and every cluster event checks several ids.)
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// DecodeB64 decodes base64url without padding, as used for every byte field.
func DecodeB64(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64: %v: %w", err, ErrInvalid)
	}
	return b, nil
}

// EncodeB64 encodes b as base64url without padding.
func EncodeB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
