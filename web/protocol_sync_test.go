package web

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"cloakroom/internal/protocol"
)

// TestProtocolJSMatchesGo: the browser's wire constants and transport
// vocabulary (static/js/protocol.js) say the same as internal/protocol, so
// a change on one side cannot drift from the other.
func TestProtocolJSMatchesGo(t *testing.T) {
	b, err := os.ReadFile("static/js/protocol.js")
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	numbers := map[string]int{
		"PROTOCOL_VERSION":      protocol.Version,
		"CHUNK_SIZE":            protocol.ChunkSize,
		"MAX_CHUNKS":            protocol.MaxChunks,
		"MAX_FRAME_BYTES":       protocol.MaxFrameBytes,
		"MAX_ENVELOPE_BYTES":    protocol.MaxEnvelopeBytes,
		"MAX_SIGNAL_BYTES":      protocol.MaxSignalBytes,
		"MAX_ACK_IDS":           protocol.MaxAckIDs,
		"FRAME_VERSION":         protocol.FrameVersion,
		"FRAME_CHUNK_UP":        protocol.FrameChunkUp,
		"FRAME_CHUNK_DOWN":      protocol.FrameChunkDown,
		"CHUNK_UP_HEADER":       protocol.ChunkUpHeader,
		"CHUNK_DOWN_HEADER":     protocol.ChunkDownHeader,
		"DC_CONFIRM":            protocol.DCConfirm,
		"DC_MANIFEST":           protocol.DCManifest,
		"DC_PROGRESS":           protocol.DCProgress,
		"DC_DONE":               protocol.DCDone,
		"DC_HAVE":               protocol.DCHave,
		"DC_WANT":               protocol.DCWant,
		"DC_HASH_REQ":           protocol.DCHashReq,
		"DC_HASHES":             protocol.DCHashes,
		"DC_CANCEL":             protocol.DCCancel,
		"HAVE_FULL":             protocol.HaveFull,
		"HAVE_COMPLETE":         protocol.HaveComplete,
		"HASHES_PER_PIECE":      protocol.HashesPerPiece,
		"MAX_HAVE_RANGES":       protocol.MaxHaveRanges,
		"MAX_WANT_INDICES":      protocol.MaxWantIndices,
		"MAX_OUTSTANDING_WANTS": protocol.MaxOutstandingWants,
		"HISTORY_LENGTH":        protocol.HistoryLength,
		"LIBRARY_ANNOUNCE":      protocol.LibraryAnnounce,
	}
	for name, want := range numbers {
		m := regexp.MustCompile(`export const ` + name + ` = ([^;]+);`).FindStringSubmatch(js)
		if m == nil {
			t.Errorf("protocol.js has no %s", name)
			continue
		}
		if got, err := jsNumber(m[1]); err != nil || got != want {
			t.Errorf("protocol.js %s = %s, Go says %d (%v)", name, m[1], want, err)
		}
	}
	sets := map[string][]string{
		"Transport": strs(protocol.Transports...),
		"Mode":      strs(protocol.ModeDirect, protocol.ModeTURN),
		"Path": strs(protocol.PathDirect, protocol.PathTURN, protocol.PathTURNUDP,
			protocol.PathTURNTCP, protocol.PathTURNTLS, protocol.PathRelay),
		"ConnState": strs(protocol.StateConnected, protocol.StateReconnecting, protocol.StateRestored),
		"Signal": strs(protocol.SignalOffer, protocol.SignalAnswer, protocol.SignalCandidate,
			protocol.SignalDecline, protocol.SignalBye, protocol.SignalHave, protocol.SignalPing, protocol.SignalPong,
			protocol.SignalLib, protocol.SignalHist, protocol.SignalName, protocol.SignalXfer),
	}
	for name, want := range sets {
		m := regexp.MustCompile(`(?s)export const ` + name + ` = Object\.freeze\(\{(.*?)\}\);`).FindStringSubmatch(js)
		if m == nil {
			t.Errorf("protocol.js has no frozen %s", name)
			continue
		}
		var got []string
		for _, v := range regexp.MustCompile(`:\s*'([^']*)'`).FindAllStringSubmatch(m[1], -1) {
			got = append(got, v[1])
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("protocol.js %s = %q, Go says %q", name, got, want)
		}
	}
}

// jsNumber evaluates the constant expressions protocol.js uses: a decimal
// or hex literal, "A << B", or "NAME + N" for a name already checked.
func jsNumber(expr string) (int, error) {
	if m := regexp.MustCompile(`^(\d+) << (\d+)$`).FindStringSubmatch(expr); m != nil {
		a, _ := strconv.Atoi(m[1])
		s, _ := strconv.Atoi(m[2])
		return a << s, nil
	}
	n, err := strconv.ParseInt(expr, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", expr)
	}
	return int(n), nil
}

func strs[T ~string](vs ...T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}
