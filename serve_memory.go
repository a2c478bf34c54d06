package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"cloakroom/signaling"
)

// Memory governor. The relay's bytes are most of a busy server's heap and
// they turn into garbage at the pace of uploads. With the default GOGC the
// heap could reach twice the relay cap; a fixed limit near the cap would
// make the collector run flat out once connections (about 17 KB each) add
// their share. So the soft memory limit follows what the heap holds: the
// relay cap with 1/32 headroom, plus everything else with the usual 100%.
const (
	governEvery   = time.Second
	governSlack   = 8 << 20  // runtime overhead beyond the heap
	governMinimum = 32 << 20 // never below this
)

// memoryLimit is the soft limit for a heap of live bytes of which
// relayBytes are the relay's.
func memoryLimit(relayMax, relayBytes, live int64) int64 {
	other := max(0, live-relayBytes)
	return max(governMinimum, relayMax+relayMax/32+2*other+governSlack)
}

// governMemory adjusts the soft memory limit every second until ctx ends,
// unless GOMEMLIMIT is set.
func governMemory(ctx context.Context, srv *signaling.Server, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(governEvery)
	defer t.Stop()
	prev, relayMax := int64(-1), srv.Config().Relay.MaxBytes
	for {
		metrics.Read(sample)
		live := int64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = int64(sample[0].Value.Uint64())
		}
		limit := memoryLimit(relayMax, srv.Stats().Relay.Bytes, live)
		if limit != prev {
			debug.SetMemoryLimit(limit)
			prev = limit
			log.Debug("soft memory limit", "bytes", limit, "live", live)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
