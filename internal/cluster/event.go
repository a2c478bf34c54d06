// Package cluster holds what cloakroom server nodes tell each other over
// NATS (docs/SCALING.md): one Event type and its wire form. It is a leaf:
// the signaling server builds and applies events, package cluster (root)
// carries them. Everything in an event is routing data or ciphertext the
// clients sealed; a node never learns a key from another node.
//
// Wire form: magic 'C', version 2, a 4-byte big-endian header length, the
// header (binary fields, codec.go), then Data (raw bytes, e.g. a sealed
// chunk frame). Another
// node may be buggy or hostile: Decode bounds every length and the
// receiver checks ids before use.
package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Event types.
const (
	TypePresence = "presence" // a member joined, came online, went offline or left (Event)
	TypeItem     = "item"     // a relay item was stored (Key, Kind, Sender, File, Owed, Data)
	TypeAck      = "ack"      // Member (or Members[i]) acked the items Keys of Room (or Rooms[i]) (Indexes: chunk index+1, 0 unknown)
	TypeSignal   = "signal"   // a sealed signal From Member To a member on the receiving node
	TypeSnapshot = "snapshot" // the members of Room as a node knows them
	TypeGone     = "gone"     // Node is leaving the cluster (drain)
)

// Limits of the wire form.
const (
	Magic       = 'C'
	Version     = 2
	headerLen   = 6
	MaxHeader   = 256 << 10 // a snapshot of a full room fits
	MaxData     = 1 << 20   // larger than any relay item (protocol.MaxFrameBytes)
	MaxList     = 4096      // entries in Owed, Keys, Members
	maxFieldLen = 256
)

// ErrMalformed is returned by Decode for bytes that are not an event.
var ErrMalformed = errors.New("cluster: malformed event")

// Member is one member of a room in a snapshot: Node is the node it is
// online on ("" when offline).
type Member struct {
	ID   string `json:"id"`
	Pub  string `json:"pub"`
	MAC  string `json:"mac"`
	Node string `json:"node,omitempty"`
}

// Event is one message between nodes.
type Event struct {
	Type    string   `json:"t"`
	Node    string   `json:"n"`            // the node that sent it
	Seq     uint64   `json:"q,omitempty"`  // the node's sequence number of the event (deduplication of retries)
	Room    string   `json:"r,omitempty"`  // room id as clients send it
	Hash    string   `json:"h,omitempty"`  // hex of the room verifier's hash (presence join)
	Event   string   `json:"e,omitempty"`  // presence: join, online, offline, leave
	Stamp   int64    `json:"ts,omitempty"` // presence: when, unix ns (the stream may deliver a stale one after a newer announcement)
	Member  string   `json:"m,omitempty"`  // the member a presence, ack or signal is from
	Pub     string   `json:"pub,omitempty"`
	MAC     string   `json:"mac,omitempty"`
	To      string   `json:"to,omitempty"`
	Key     string   `json:"k,omitempty"` // cluster-wide item key: node "/" item id
	Kind    uint8    `json:"kind,omitempty"`
	Sender  string   `json:"s,omitempty"`
	Origin  string   `json:"o,omitempty"` // the uploader's address key (per-address quota)
	File    string   `json:"f,omitempty"`
	Owed    []string `json:"owed,omitempty"`
	Keys    []string `json:"keys,omitempty"`
	Members []string `json:"ms,omitempty"` // ack: who acked each key, when not Member
	Rooms   []string `json:"rs,omitempty"` // ack: the room of each key, when not Room
	Indexes []uint32 `json:"ix,omitempty"`
	Roster  []Member `json:"mem,omitempty"` // snapshot: the room's members
	Data    []byte   `json:"-"`
	// Early is set by the receiving bus on an item that came by the early
	// path (core NATS, ahead of the stream); never on the wire.
	Early bool `json:"-"`
}

// Encode returns the wire form of ev.
func Encode(ev *Event) ([]byte, error) {
	b := make([]byte, headerLen, headerLen+headerSize(ev)+len(ev.Data))
	b[0], b[1] = Magic, Version
	b = appendHeader(b, ev)
	n := len(b) - headerLen
	if n > MaxHeader || len(ev.Data) > MaxData {
		return nil, fmt.Errorf("cluster: encode %s: %w (too large)", ev.Type, ErrMalformed)
	}
	binary.BigEndian.PutUint32(b[2:], uint32(n))
	return append(b, ev.Data...), nil
}

// Decode parses and bounds an event. Data aliases b.
func Decode(b []byte) (*Event, error) {
	if len(b) < headerLen || b[0] != Magic || b[1] != Version {
		return nil, fmt.Errorf("%w: bad preamble", ErrMalformed)
	}
	n := binary.BigEndian.Uint32(b[2:])
	if n > MaxHeader || uint64(n) > uint64(len(b)-headerLen) {
		return nil, fmt.Errorf("%w: header length %d", ErrMalformed, n)
	}
	var ev Event
	if err := parseHeader(b[headerLen:headerLen+int(n)], &ev); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if data := b[headerLen+int(n):]; len(data) > 0 {
		ev.Data = data
	}
	if err := ev.check(); err != nil {
		return nil, err
	}
	return &ev, nil
}

// check bounds the fields; the receiver validates ids against the protocol.
func (ev *Event) check() error {
	switch ev.Type {
	case TypePresence, TypeItem, TypeAck, TypeSignal, TypeSnapshot, TypeGone:
	default:
		return fmt.Errorf("%w: type %q", ErrMalformed, ev.Type)
	}
	if ev.Node == "" || len(ev.Data) > MaxData {
		return fmt.Errorf("%w: no node or data too large", ErrMalformed)
	}
	if len(ev.Owed) > MaxList || len(ev.Keys) > MaxList || len(ev.Roster) > MaxList || len(ev.Indexes) > MaxList || len(ev.Members) > MaxList || len(ev.Rooms) > MaxList {
		return fmt.Errorf("%w: list too long", ErrMalformed)
	}
	if ev.Type == TypeAck && (!parallel(ev.Indexes, ev.Keys) || !parallel(ev.Members, ev.Keys) || !parallel(ev.Rooms, ev.Keys)) {
		return fmt.Errorf("%w: ack indexes, members or rooms do not match keys", ErrMalformed)
	}
	if ev.Type != TypeAck && len(ev.Rooms) > 0 {
		return fmt.Errorf("%w: rooms in a %s", ErrMalformed, ev.Type)
	}
	for _, s := range []string{ev.Node, ev.Room, ev.Hash, ev.Event, ev.Member, ev.Pub, ev.MAC, ev.To, ev.Key, ev.Sender, ev.Origin, ev.File} {
		if len(s) > maxFieldLen {
			return fmt.Errorf("%w: field too long", ErrMalformed)
		}
	}
	return nil
}

// parallel reports whether list is empty or has one entry per key.
func parallel[T any](list []T, keys []string) bool { return len(list) == 0 || len(list) == len(keys) }
