package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"cloakroom/internal/protocol"
)

// RunFanout: Rooms × Members clients each sending MsgRate messages a
// second to its room; latency from send to each other member's receipt.
func RunFanout(ctx context.Context, cfg Config) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	f, stdout := cfg, cfg.Out
	raiseFileLimit()
	n := f.Rooms * f.Members
	srv, err := startServerChild(ctx, cfg.Serve, "--max-conns-per-ip", "-1", "--join-rate", "-1", "--msg-rate", "-1")
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Fprintf(stdout, "bench fanout: %d rooms × %d members, %g msg/s each (%g deliveries/s), server child process on 127.0.0.1\n",
		f.Rooms, f.Members, f.MsgRate, float64(n)*f.MsgRate*float64(f.Members-1))
	r, err := measureFanout(ctx, f, []string{srv.url}, []int{srv.cmd.Process.Pid})
	if err != nil {
		return err
	}
	printFanout(stdout, f, r.sent, r.got, r.serverCPU, r.selfCPU, r.rss)
	fmt.Fprintf(stdout, "deliveries of a message a member already had: %d\n", r.dups)
	return nil
}

// fanoutResult is one fan-out run: deliveries (sorted latencies), those
// between members on different nodes, CPU (shares of one core, servers
// summed) and the servers' RSS summed.
type fanoutResult struct {
	sent, dups         int64
	got, cross         []time.Duration
	serverCPU, selfCPU float64
	rss                int64
}

// measureFanout runs the fan-out against the servers at urls (processes
// pids), the members of each room spread over them.
func measureFanout(ctx context.Context, f Config, urls []string, pids []int) (fanoutResult, error) {
	clients, err := benchDialNodes(ctx, urls, f.Rooms*f.Members, f.Members)
	if err != nil {
		return fanoutResult{}, err
	}
	rec, cross := &latencies{}, &latencies{}
	var wg sync.WaitGroup
	for _, c := range clients {
		c.cross = cross
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.receive(rec)
		}()
	}
	time.Sleep(time.Second) // presence settles
	warmup := 2 * time.Second
	runCtx, cancel := context.WithTimeout(ctx, warmup+f.Duration)
	defer cancel()
	rec.from.Store(time.Now().Add(warmup).UnixNano())
	cross.from.Store(rec.from.Load())
	var sent atomic.Int64
	var swg sync.WaitGroup
	for _, c := range clients {
		swg.Add(1)
		go func() {
			defer swg.Done()
			c.sendEvery(runCtx, time.Duration(float64(time.Second)/f.MsgRate), rec, &sent)
		}()
	}
	time.Sleep(warmup)
	cpu0, self0, t0 := sumCPU(pids), procCPU(os.Getpid()), time.Now()
	swg.Wait()
	cpu1, self1, span := sumCPU(pids), procCPU(os.Getpid()), time.Since(t0)
	time.Sleep(2 * time.Second) // the last deliveries
	benchCloseAll(clients)
	wg.Wait()
	r := fanoutResult{sent: sent.Load(), dups: rec.dups.Load(), got: rec.sorted(), cross: cross.sorted(),
		serverCPU: float64(cpu1-cpu0) / float64(span), selfCPU: float64(self1-self0) / float64(span)}
	for _, pid := range pids {
		r.rss += procStatus(pid, "VmRSS")
	}
	if len(r.got) == 0 {
		return r, errors.New("bench: no message delivered")
	}
	return r, nil
}

func sumCPU(pids []int) time.Duration {
	var d time.Duration
	for _, pid := range pids {
		d += procCPU(pid)
	}
	return d
}

// printFanout writes the fan-out figures: deliveries, latency percentiles
// and CPU (shares of one core) of the server and of the clients.
func printFanout(out io.Writer, f Config, sent int64, got []time.Duration, serverCPU, selfCPU float64, rss int64) {
	fmt.Fprintf(out, "measured %s: %d messages sent, %d of %d deliveries received\n",
		f.Duration, sent, len(got), sent*int64(f.Members-1))
	fmt.Fprintf(out, "forwarding latency (send -> receipt by each other member): p50 %s, p90 %s, p99 %s, max %s\n",
		pct(got, 50), pct(got, 90), pct(got, 99), got[len(got)-1])
	fmt.Fprintf(out, "CPU: server %.0f%% of one core, clients (this process) %.0f%%; server RSS %.1f MiB\n",
		100*serverCPU, 100*selfCPU, mib(rss))
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(10 * time.Microsecond)
}

// latencies collects delivery latencies of messages sent after from.
type latencies struct {
	from atomic.Int64 // unix nanos: count messages sent from then
	dups atomic.Int64 // messages a member received more than once
	mu   sync.Mutex
	d    []time.Duration
}

func (l *latencies) add(sent int64, now time.Time) {
	if sent < l.from.Load() {
		return
	}
	l.mu.Lock()
	l.d = append(l.d, now.Sub(time.Unix(0, sent)))
	l.mu.Unlock()
}

func (l *latencies) sorted() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.d)
	return l.d
}

// sendEvery sends a chat-sized message every period (random phase) until
// ctx ends; the data starts with the send time.
func (c *benchClient) sendEvery(ctx context.Context, period time.Duration, rec *latencies, sent *atomic.Int64) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(period)):
	}
	t := time.NewTicker(period)
	defer t.Stop()
	payload := make([]byte, 352) // a sealed 256-byte chat envelope is about this size
	tag := rand.Uint32()
	for {
		now := time.Now()
		binary.BigEndian.PutUint64(payload, uint64(now.UnixNano()))
		payload[8] = c.node
		binary.BigEndian.PutUint32(payload[9:], tag)
		if err := c.write(&protocol.Message{Type: protocol.TypeMsg, Data: protocol.EncodeB64(payload)}); err != nil {
			return
		}
		if now.UnixNano() >= rec.from.Load() {
			sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// receive records the latency of every msg and acks it, until the
// connection ends. It reads into one buffer and decodes only what it uses,
// so that the instrument takes less of the CPU it shares with the servers
// (what goes over the wire is the protocol as any client speaks it).
// Messages are told apart by their send time, node and sender tag: one
// seen twice is counted in dups.
func (c *benchClient) receive(rec *latencies) {
	var buf bytes.Buffer
	seen := map[[benchTagLen]byte]struct{}{}
	for {
		buf.Reset()
		mt, r, err := c.ws.NextReader()
		if err == nil {
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			return // closed at the end of the run
		}
		var m struct {
			T    string `json:"t"`
			ID   uint64 `json:"id"`
			Data string `json:"data"`
		}
		if mt != websocket.TextMessage || json.Unmarshal(buf.Bytes(), &m) != nil || m.T != protocol.TypeMsg {
			continue
		}
		now := time.Now()
		if data, err := protocol.DecodeB64(m.Data); err == nil && len(data) >= benchTagLen {
			sent := int64(binary.BigEndian.Uint64(data))
			if _, dup := seen[[benchTagLen]byte(data)]; dup && sent >= rec.from.Load() {
				rec.dups.Add(1)
			}
			seen[[benchTagLen]byte(data)] = struct{}{}
			rec.add(sent, now)
			if c.cross != nil && data[8] != c.node {
				c.cross.add(sent, now)
			}
		}
		if c.writeRaw(strconv.AppendUint([]byte(`{"t":"ack","ids":[`), m.ID, 10), ']', '}') != nil {
			return
		}
	}
}

// benchTagLen is what identifies a bench message: its send time (8 bytes,
// unix ns), the sender's node (1) and the sender's random tag (4).
const benchTagLen = 13

func (c *benchClient) writeRaw(b []byte, tail ...byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(protocol.WriteWait))
	return c.ws.WriteMessage(websocket.TextMessage, append(b, tail...))
}
