package protocol

import (
	"fmt"
	"slices"
	"strings"
)

// Lengths of decoded byte fields.
const (
	RoomIDLen   = 16
	VerifierLen = 32
	PubLen      = 65 // uncompressed P-256 point
	MACLen      = 32
)

// fieldRule lists, per message type, which fields may be set and which must be.
type fieldRule struct {
	allowed  []string
	required []string
}

var rules = map[string]fieldRule{
	TypeJoin:          {allowed: []string{"v", "room", "verifier", "member", "pub", "mac"}, required: []string{"v", "room", "verifier", "member", "pub", "mac"}},
	TypeSignal:        {allowed: []string{"from", "to", "data"}, required: []string{"data"}},
	TypeMsg:           {allowed: []string{"id", "from", "data", "file", "chunks"}, required: []string{"data"}},
	TypeFile:          {allowed: []string{"file", "chunks", "data", "recipients"}, required: []string{"file", "chunks", "data"}},
	TypeTURN:          {allowed: []string{"ice", "expires"}},
	TypeAck:           {allowed: []string{"ids"}, required: []string{"ids"}},
	TypeLeave:         {},
	TypeWelcome:       {allowed: []string{"v", "member", "members", "ttl", "ice", "expires"}, required: []string{"v", "member"}},
	TypePresence:      {allowed: []string{"event", "member", "pub", "mac", "online"}, required: []string{"event", "member"}},
	TypeFileOK:        {allowed: []string{"file", "recipients"}, required: []string{"file"}},
	TypeProgress:      {allowed: []string{"file", "member", "acked"}, required: []string{"file", "member"}},
	TypeDelivered:     {allowed: []string{"file", "member"}, required: []string{"file", "member"}},
	TypeUndeliverable: {allowed: []string{"file", "member", "error"}, required: []string{"file", "member", "error"}},
	TypeError:         {allowed: []string{"code", "error", "file"}, required: []string{"code", "error"}},
}

// present returns the JSON names of the fields set in m (other than "t").
func (m *Message) present() []string {
	var p []string
	add := func(set bool, name string) {
		if set {
			p = append(p, name)
		}
	}
	add(m.V != 0, "v")
	add(m.Room != "", "room")
	add(m.Verifier != "", "verifier")
	add(m.Member != "", "member")
	add(m.Pub != "", "pub")
	add(m.MAC != "", "mac")
	add(m.From != "", "from")
	add(m.To != "", "to")
	add(m.Data != "", "data")
	add(m.ID != 0, "id")
	add(m.IDs != nil, "ids")
	add(m.File != "", "file")
	add(m.Chunks != 0, "chunks")
	add(m.Acked != 0, "acked")
	add(m.Recipients != nil, "recipients")
	add(m.Event != "", "event")
	add(m.Online, "online")
	add(m.Members != nil, "members")
	add(m.TTL != 0, "ttl")
	add(m.ICE != nil, "ice")
	add(m.Expires != 0, "expires")
	add(m.Code != "", "code")
	add(m.Error != "", "error")
	return p
}

func invalid(m *Message, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", m.Type, fmt.Sprintf(format, args...), ErrInvalid)
}

// Validate checks that m is a well-formed message of its type: only the
// fields its type allows, all the fields it requires, ids and byte fields of
// the right form and size.
func (m *Message) Validate() error {
	rule, ok := rules[m.Type]
	if !ok {
		return fmt.Errorf("unknown type %q: %w", m.Type, ErrInvalid)
	}
	present := m.present()
	for _, f := range present {
		if !slices.Contains(rule.allowed, f) {
			return invalid(m, "field %q not allowed", f)
		}
	}
	for _, f := range rule.required {
		if !slices.Contains(present, f) {
			return invalid(m, "field %q required", f)
		}
	}
	return m.validateFields()
}

func (m *Message) validateFields() error {
	for _, id := range []string{m.Member, m.From, m.To, m.File} {
		if id != "" && !ValidID(id) {
			return invalid(m, "malformed id %q", truncate(id))
		}
	}
	checks := []struct {
		val  string
		name string
		min  int
		max  int
	}{
		{m.Room, "room", RoomIDLen, RoomIDLen},
		{m.Verifier, "verifier", VerifierLen, VerifierLen},
		{m.Pub, "pub", PubLen, PubLen},
		{m.MAC, "mac", MACLen, MACLen},
		{m.Data, "data", 1, m.maxData()},
	}
	for _, c := range checks {
		if c.val == "" {
			continue
		}
		if err := checkB64(c.val, c.min, c.max); err != nil {
			return invalid(m, "%s: %v", c.name, err)
		}
	}
	return m.validateType()
}

func (m *Message) maxData() int {
	if m.Type == TypeSignal {
		return MaxSignalBytes
	}
	return MaxEnvelopeBytes
}

func (m *Message) validateType() error {
	switch m.Type {
	case TypeJoin, TypeWelcome:
		if m.V != Version {
			return invalid(m, "version %d, want %d", m.V, Version)
		}
	case TypeFile:
		if m.Chunks > MaxChunks {
			return invalid(m, "%d chunks over limit %d", m.Chunks, MaxChunks)
		}
	case TypeMsg:
		if (m.File == "") != (m.Chunks == 0) || m.Chunks > MaxChunks {
			return invalid(m, "file and chunks go together")
		}
	case TypeAck:
		if len(m.IDs) == 0 || len(m.IDs) > MaxAckIDs {
			return invalid(m, "%d ids, want 1..%d", len(m.IDs), MaxAckIDs)
		}
	case TypePresence:
		if !slices.Contains([]string{EventJoin, EventOnline, EventOffline, EventLeave}, m.Event) {
			return invalid(m, "unknown event %q", truncate(m.Event))
		}
	case TypeProgress:
		if m.Acked > MaxChunks {
			return invalid(m, "acked %d over limit", m.Acked)
		}
	case TypeError, TypeUndeliverable:
		if len(m.Error) > 1024 || len(m.Code) > 64 {
			return invalid(m, "error text too long")
		}
	}
	return m.validateMembers()
}

func (m *Message) validateICE() error {
	if len(m.ICE) > MaxICEServers {
		return invalid(m, "too many ICE servers")
	}
	for _, is := range m.ICE {
		if len(is.URLs) == 0 || len(is.URLs) > MaxICEURLs || len(is.Username) > 512 || len(is.Credential) > 512 {
			return invalid(m, "malformed ICE server")
		}
		for _, u := range is.URLs {
			ok := strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") || strings.HasPrefix(u, "stun:")
			if !ok || len(u) > 256 {
				return invalid(m, "malformed ICE server URL")
			}
		}
	}
	return nil
}

func (m *Message) validateMembers() error {
	if err := m.validateICE(); err != nil {
		return err
	}
	if len(m.Members) > MaxMembers || len(m.Recipients) > MaxMembers {
		return invalid(m, "too many members")
	}
	for _, r := range m.Recipients {
		if !ValidID(r) {
			return invalid(m, "malformed recipient id")
		}
	}
	for _, mi := range m.Members {
		if !ValidID(mi.Member) {
			return invalid(m, "malformed member id")
		}
		if checkB64(mi.Pub, PubLen, PubLen) != nil || checkB64(mi.MAC, MACLen, MACLen) != nil {
			return invalid(m, "malformed member announcement")
		}
	}
	return nil
}

func checkB64(s string, minLen, maxLen int) error {
	if len(s) > (maxLen*4+2)/3 {
		return fmt.Errorf("too long")
	}
	b, err := DecodeB64(s)
	if err != nil {
		return err
	}
	if len(b) < minLen || len(b) > maxLen {
		return fmt.Errorf("%d bytes, want %d..%d", len(b), minLen, maxLen)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
