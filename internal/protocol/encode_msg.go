package protocol

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// EncodeMsg returns what Encode returns for msg{id, from, file, chunks,
// data (the raw bytes, base64url-encoded here)}, without reflection: the
// server encodes one for every delivery of a chat message or manifest.
// Inputs Encode would refuse go through Encode, for its error; FuzzEncodeMsg
// holds the two to the same bytes.
func EncodeMsg(id uint64, from, file string, chunks uint32, data []byte) ([]byte, error) {
	slow := func() ([]byte, error) {
		return Encode(&Message{Type: TypeMsg, ID: id, From: from, File: file, Chunks: chunks, Data: EncodeB64(data)})
	}
	if len(data) == 0 || len(data) > MaxEnvelopeBytes || from != "" && !ValidID(from) ||
		file != "" && !ValidID(file) || (file == "") != (chunks == 0) || chunks > MaxChunks {
		return slow()
	}
	// Every value is an id, a number or base64url: nothing to escape.
	b := make([]byte, 0, 96+len(from)+len(file)+base64.RawURLEncoding.EncodedLen(len(data)))
	b = append(b, `{"t":"msg"`...)
	if from != "" {
		b = append(append(append(b, `,"from":"`...), from...), '"')
	}
	b = append(b, `,"data":"`...)
	b = base64.RawURLEncoding.AppendEncode(b, data)
	b = append(b, '"')
	if id != 0 {
		b = strconv.AppendUint(append(b, `,"id":`...), id, 10)
	}
	if file != "" {
		b = append(append(append(b, `,"file":"`...), file...), '"')
		b = strconv.AppendUint(append(b, `,"chunks":`...), uint64(chunks), 10)
	}
	b = append(b, '}')
	if len(b) > MaxControlBytes {
		return nil, fmt.Errorf("encode %s: %d bytes over limit: %w", TypeMsg, len(b), ErrInvalid)
	}
	return b, nil
}
