package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The header's binary form: a sequence of fields, each a tag byte and its
// value. Strings and nested values are a uvarint length and the bytes;
// numbers are uvarints (Stamp zig-zag); a list is its tag repeated, one
// entry each (Indexes: one packed field). Unknown tags are malformed. It
// replaced JSON (version 1), which took most of a node's time spent on
// other nodes' events (BENCHMARKS.md, cluster).
const (
	tagType byte = iota + 1
	tagNode
	tagSeq
	tagRoom
	tagHash
	tagEvent
	tagStamp
	tagMember
	tagPub
	tagMAC
	tagTo
	tagKey
	tagKind
	tagSender
	tagOrigin
	tagFile
	tagOwed
	tagKeys
	tagMembers
	tagIndexes
	tagRooms
	tagRoster // nested: tagID, tagPub, tagMAC, tagNode
	tagID
)

// headerSize is a close guess of the header's length, to size the buffer.
func headerSize(ev *Event) int {
	n := 64 + len(ev.Type) + len(ev.Node) + len(ev.Room) + len(ev.Hash) + len(ev.Member) + len(ev.Pub) + len(ev.MAC) +
		len(ev.To) + len(ev.Key) + len(ev.Sender) + len(ev.Origin) + len(ev.File) + 5*len(ev.Indexes)
	for _, list := range [][]string{ev.Owed, ev.Keys, ev.Members, ev.Rooms} {
		for _, s := range list {
			n += 2 + len(s)
		}
	}
	return n + 180*len(ev.Roster)
}

func appendHeader(b []byte, ev *Event) []byte {
	b = appendStr(b, tagType, ev.Type)
	b = appendStr(b, tagNode, ev.Node)
	if ev.Seq != 0 {
		b = binary.AppendUvarint(append(b, tagSeq), ev.Seq)
	}
	for _, f := range []struct {
		tag byte
		s   string
	}{{tagRoom, ev.Room}, {tagHash, ev.Hash}, {tagEvent, ev.Event}, {tagMember, ev.Member}, {tagPub, ev.Pub},
		{tagMAC, ev.MAC}, {tagTo, ev.To}, {tagKey, ev.Key}, {tagSender, ev.Sender}, {tagOrigin, ev.Origin}, {tagFile, ev.File}} {
		if f.s != "" {
			b = appendStr(b, f.tag, f.s)
		}
	}
	if ev.Stamp != 0 {
		b = binary.AppendVarint(append(b, tagStamp), ev.Stamp)
	}
	if ev.Kind != 0 {
		b = binary.AppendUvarint(append(b, tagKind), uint64(ev.Kind))
	}
	b = appendList(b, tagOwed, ev.Owed)
	b = appendList(b, tagKeys, ev.Keys)
	b = appendList(b, tagMembers, ev.Members)
	b = appendList(b, tagRooms, ev.Rooms)
	if len(ev.Indexes) > 0 {
		var packed []byte
		for _, ix := range ev.Indexes {
			packed = binary.AppendUvarint(packed, uint64(ix))
		}
		b = appendStr(b, tagIndexes, string(packed))
	}
	for _, m := range ev.Roster {
		var sub []byte
		sub = appendStr(sub, tagID, m.ID)
		sub = appendStr(sub, tagPub, m.Pub)
		sub = appendStr(sub, tagMAC, m.MAC)
		if m.Node != "" {
			sub = appendStr(sub, tagNode, m.Node)
		}
		b = appendStr(b, tagRoster, string(sub))
	}
	return b
}

func appendStr(b []byte, tag byte, s string) []byte {
	b = binary.AppendUvarint(append(b, tag), uint64(len(s)))
	return append(b, s...)
}

func appendList(b []byte, tag byte, list []string) []byte {
	for _, s := range list {
		b = appendStr(b, tag, s)
	}
	return b
}

var errField = errors.New("bad field")

// reader walks a header's fields.
type reader struct{ b []byte }

func (r *reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: number", errField)
	}
	r.b = r.b[n:]
	return v, nil
}

// bytes returns the next length-prefixed value, of at most max bytes.
func (r *reader) bytes(max int) ([]byte, error) {
	n, err := r.uvarint()
	if err != nil || n > uint64(max) || n > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: length", errField)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, nil
}

func (r *reader) str() (string, error) {
	v, err := r.bytes(maxFieldLen)
	return string(v), err
}

// parseHeader reads the fields of a header into ev.
func parseHeader(b []byte, ev *Event) error {
	r := &reader{b: b}
	for len(r.b) > 0 {
		tag := r.b[0]
		r.b = r.b[1:]
		var err error
		if f := ev.strField(tag); f != nil {
			*f, err = r.str()
		} else if l := ev.listField(tag); l != nil {
			var s string
			if s, err = r.str(); err == nil && len(*l) < MaxList {
				*l = append(*l, s)
			} else if err == nil {
				err = fmt.Errorf("%w: list too long", errField)
			}
		} else {
			err = parseOther(r, tag, ev)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// strField is the string field of tag (nil if tag is not one).
func (ev *Event) strField(tag byte) *string {
	switch tag {
	case tagType:
		return &ev.Type
	case tagNode:
		return &ev.Node
	case tagRoom:
		return &ev.Room
	case tagHash:
		return &ev.Hash
	case tagEvent:
		return &ev.Event
	case tagMember:
		return &ev.Member
	case tagPub:
		return &ev.Pub
	case tagMAC:
		return &ev.MAC
	case tagTo:
		return &ev.To
	case tagKey:
		return &ev.Key
	case tagSender:
		return &ev.Sender
	case tagOrigin:
		return &ev.Origin
	case tagFile:
		return &ev.File
	}
	return nil
}

// listField is the list of tag (nil if tag is not one).
func (ev *Event) listField(tag byte) *[]string {
	switch tag {
	case tagOwed:
		return &ev.Owed
	case tagKeys:
		return &ev.Keys
	case tagMembers:
		return &ev.Members
	case tagRooms:
		return &ev.Rooms
	}
	return nil
}

// parseOther reads the numbers, Indexes and Roster.
func parseOther(r *reader, tag byte, ev *Event) error {
	switch tag {
	case tagSeq:
		v, err := r.uvarint()
		ev.Seq = v
		return err
	case tagStamp:
		v, n := binary.Varint(r.b)
		if n <= 0 {
			return fmt.Errorf("%w: stamp", errField)
		}
		r.b, ev.Stamp = r.b[n:], v
		return nil
	case tagKind:
		v, err := r.uvarint()
		if err == nil && v > 255 {
			err = fmt.Errorf("%w: kind", errField)
		}
		ev.Kind = uint8(v)
		return err
	case tagIndexes:
		packed, err := r.bytes(MaxList * binary.MaxVarintLen32)
		if err != nil || ev.Indexes != nil {
			return fmt.Errorf("%w: indexes", errField)
		}
		ev.Indexes = []uint32{}
		for p := (&reader{b: packed}); len(p.b) > 0; {
			v, err := p.uvarint()
			if err != nil || v > 1<<32-1 || len(ev.Indexes) >= MaxList {
				return fmt.Errorf("%w: index", errField)
			}
			ev.Indexes = append(ev.Indexes, uint32(v))
		}
		return nil
	case tagRoster:
		sub, err := r.bytes(4 * (maxFieldLen + 1 + binary.MaxVarintLen16))
		if err != nil || len(ev.Roster) >= MaxList {
			return fmt.Errorf("%w: roster", errField)
		}
		m, err := parseMember(sub)
		ev.Roster = append(ev.Roster, m)
		return err
	}
	return fmt.Errorf("%w: tag %d", errField, tag)
}

func parseMember(b []byte) (Member, error) {
	var m Member
	r := &reader{b: b}
	for len(r.b) > 0 {
		var f *string
		switch r.b[0] {
		case tagID:
			f = &m.ID
		case tagPub:
			f = &m.Pub
		case tagMAC:
			f = &m.MAC
		case tagNode:
			f = &m.Node
		}
		if f == nil {
			return m, fmt.Errorf("%w: member tag %d", errField, r.b[0])
		}
		r.b = r.b[1:]
		var err error
		if *f, err = r.str(); err != nil {
			return m, err
		}
	}
	return m, nil
}
