package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloakroom/signaling"
	"cloakroom/turn"
)

// metricsSource is what /metrics reads at each scrape.
type metricsSource struct {
	sig  *signaling.Server
	turn func() (turn.Stats, bool)    // false: no embedded TURN server
	mux  func() (turn.MuxStats, bool) // false: HTTPS only on the main port
}

// muxStats reads m's counters (none when m is nil).
func muxStats(m *turn.Mux) func() (turn.MuxStats, bool) {
	return func() (turn.MuxStats, bool) {
		if m == nil {
			return turn.MuxStats{}, false
		}
		return m.Stats(), true
	}
}

// muxSamples are the counters of the HTTPS port shared with TURN.
func (m metricsSource) muxSamples() []metric {
	if m.mux == nil {
		return nil
	}
	st, ok := m.mux()
	if !ok {
		return nil
	}
	var out []metric
	for _, r := range []struct {
		labels string
		n      uint64
	}{
		{`{to="https",by="alpn"}`, st.HTTPByALPN}, {`{to="https",by="sniff"}`, st.HTTPBySniff},
		{`{to="turn",by="alpn"}`, st.TURNByALPN}, {`{to="turn",by="sniff"}`, st.TURNBySniff},
	} {
		out = append(out, metric{name: "cloakroom_tls_port_connections_total", typ: "counter", labels: r.labels, value: float64(r.n),
			help: "Connections to the HTTPS port handed to HTTPS or TURN over TLS, told apart by ALPN or by their first bytes."})
	}
	return append(out, metric{name: "cloakroom_tls_port_refused_total", typ: "counter", value: float64(st.Failed),
		help: "Connections to the HTTPS port closed before HTTPS or TURN got them: failed TLS handshake, silent past the header timeout."})
}

// metric is one sample line (with its family's HELP and TYPE when first).
type metric struct {
	name, help, typ string
	labels          string // `{k="v"}` or ""
	value           float64
}

func (m metricsSource) samples() []metric {
	sig := m.sig.Stats()
	st := sig.Relay
	g := func(name, help string, v float64) metric {
		return metric{name: name, help: help, typ: "gauge", value: v}
	}
	c := func(name, help string, v float64) metric {
		return metric{name: name, help: help, typ: "counter", value: v}
	}
	out := []metric{
		g("cloakroom_rooms", "Rooms the server knows.", float64(sig.Rooms)),
		g("cloakroom_members", "Known members of all rooms, online or not.", float64(sig.Members)),
		g("cloakroom_members_online", "Members with a live connection.", float64(sig.Online)),
		g("cloakroom_websocket_connections", "Open WebSocket connections.", float64(sig.Conns)),
		c("cloakroom_websocket_connections_total", "WebSocket connections accepted (upgraded).", float64(sig.ConnsTotal)),
		g("cloakroom_http_connections", "Open HTTP connections that are not WebSockets.", float64(sig.HTTPConns)),
		g("cloakroom_client_addresses", "Client addresses (IPv4, IPv6 /64) tracked for per-address limits.", float64(sig.Addrs)),
		g("cloakroom_relay_bytes", "Bytes held by the relay store.", float64(st.Bytes)),
		g("cloakroom_relay_items", "Items held by the relay store.", float64(st.Items)),
		g("cloakroom_relay_rooms", "Rooms with items in the relay store.", float64(st.Rooms)),
		g("cloakroom_relay_max_bytes", "The relay store's byte cap (--relay-max-bytes).", float64(m.sig.Config().Relay.MaxBytes)),
	}
	names := make([]string, 0, len(sig.Limited))
	for k := range sig.Limited {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		l := c("cloakroom_limited_total", "Requests or connections refused (upload_rate: throttled) by a limit.", float64(sig.Limited[k]))
		l.labels = `{limit="` + k + `"}`
		out = append(out, l)
	}
	if ts, ok := m.turn(); ok {
		out = append(out,
			g("cloakroom_turn_allocations", "Live TURN allocations.", float64(ts.Allocations)),
			c("cloakroom_turn_relayed_bytes_total", "Payload bytes relayed by TURN, both directions.", float64(ts.BytesRelayed)),
			c("cloakroom_turn_relay_dropped_total", "Datagrams between two TURN relays dropped on a full queue.", float64(ts.RelayDropped)))
		for _, r := range []struct {
			reason string
			n      uint64
		}{{"auth", ts.AuthRefused}, {"permission", ts.PermissionRefused}, {"quota", ts.QuotaRefused}} {
			x := c("cloakroom_turn_refused_total", "TURN requests refused: bad credentials (401), peer policy (403), quota (486).", float64(r.n))
			x.labels = `{reason="` + r.reason + `"}`
			out = append(out, x)
		}
	}
	out = append(out, m.muxSamples()...)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out = append(out,
		g("go_goroutines", "Goroutines.", float64(runtime.NumGoroutine())),
		g("go_memstats_heap_inuse_bytes", "Heap bytes in use.", float64(ms.HeapInuse)),
		g("process_resident_memory_bytes", "Resident set size.", float64(residentBytes())))
	return out
}

// writeMetrics writes samples in the Prometheus text format (0.0.4).
func writeMetrics(w io.Writer, samples []metric) error {
	bw := bufio.NewWriter(w)
	seen := map[string]bool{}
	for _, m := range samples {
		if !seen[m.name] {
			seen[m.name] = true
			fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		}
		fmt.Fprintf(bw, "%s%s %s\n", m.name, m.labels, strconv.FormatFloat(m.value, 'g', -1, 64))
	}
	return bw.Flush()
}

func (m metricsSource) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = writeMetrics(w, m.samples())
	})
	return mux
}

// residentBytes reads this process's RSS from /proc (0 elsewhere).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// listenMetrics opens the metrics listener: nil when addr is empty or "0".
// A failure on the default address is a warning (another server may hold
// it); on an address given explicitly it is an error.
func listenMetrics(addr string, explicit bool, log *slog.Logger) (net.Listener, error) {
	if addr == "" || addr == "0" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return ln, nil
	case explicit:
		return nil, fmt.Errorf("serve: --metrics-addr %s: %w", addr, err)
	}
	log.Warn("metrics off: cannot listen on the default address; set --metrics-addr", "addr", addr, "err", err)
	return nil, nil
}

// runMetrics serves /metrics on ln until ctx ends.
func runMetrics(ctx context.Context, ln net.Listener, src metricsSource, log *slog.Logger) {
	hs := &http.Server{
		Handler:           src.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server", "err", err)
	}
}
