package turn

import (
	"net"

	pionturn "github.com/pion/turn/v4"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	benchSize   = 1200 // a typical WebRTC datagram
	benchWindow = 256  // datagrams in flight: well within every socket buffer
)

// BenchmarkRelay pushes 1200-byte datagrams relay-to-relay through the
// server (two pion clients over UDP, ChannelData) and, as a baseline, between
// two plain UDP sockets; it reports both rates and their ratio.
func BenchmarkRelay(b *testing.B) {
	s, _ := startServer(b, Config{AllowLoopback: true})
	ca, ra := allocate(b, s, "udp", "a")
	cb, rb := allocate(b, s, "udp", "b")
	if err := ca.CreatePermission(rb.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	if err := cb.CreatePermission(ra.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	exchange(b, ra, rb, []byte("warm up")) // starts the channel binding
	b.SetBytes(benchSize)
	b.ResetTimer()
	cpu0 := cpuTime()
	turn := pump(b, ra, rb, b.N)
	turnCPU := cpuTime() - cpu0
	b.StopTimer()

	d1, d2 := udpPair(b)
	n := max(b.N, 20000)
	cpu0 = cpuTime()
	direct := pump(b, d1, d2, n)
	directCPU := cpuTime() - cpu0
	b.ReportMetric(turn, "MB/s-turn")
	b.ReportMetric(direct, "MB/s-direct")
	b.ReportMetric(turn/direct, "turn/direct")
	// CPU time per datagram (the whole process: clients, server, receiver)
	// holds up better than the rates on a machine others are using.
	b.ReportMetric(float64(turnCPU.Nanoseconds())/float64(b.N), "cpu-ns/dgram-turn")
	b.ReportMetric(float64(directCPU.Nanoseconds())/float64(n), "cpu-ns/dgram-direct")
}

// BenchmarkRelayMux is BenchmarkRelay with one client over TLS on a Mux
// (the HTTPS port; no ALPN, so told apart by its first bytes, as Chromium's
// and pion's are), beside the same client over UDP: it reports both rates,
// each way, and TLS / UDP.
func BenchmarkRelayMux(b *testing.B) {
	e := startMux(b, DefaultMuxTimeout)
	peerClient, peer := allocate(b, e.turn, "udp", "peer")
	rates := map[string][2]float64{}
	for _, via := range []string{"tls", "udp"} {
		var c *pionturn.Client
		var relay net.PacketConn
		if via == "tls" {
			c, relay = e.allocate(b)
		} else {
			c, relay = allocate(b, e.turn, "udp", via)
		}
		if err := c.CreatePermission(peer.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		if err := peerClient.CreatePermission(relay.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		exchange(b, relay, peer, []byte("warm up")) // starts the channel bindings
		exchange(b, peer, relay, []byte("warm up"))
		n := max(b.N, 20000)
		rates[via] = [2]float64{pump(b, relay, peer, n), pump(b, peer, relay, n)}
	}
	tls, udp := rates["tls"], rates["udp"]
	b.ReportMetric(tls[0], "MB/s-tls-up")
	b.ReportMetric(tls[1], "MB/s-tls-down")
	b.ReportMetric(udp[0], "MB/s-udp-up")
	b.ReportMetric(udp[1], "MB/s-udp-down")
	b.ReportMetric((tls[0]+tls[1])/(udp[0]+udp[1]), "tls/udp")
}

// BenchmarkRelayPeer pushes 1200-byte datagrams from a plain UDP socket (a
// peer outside the server) to a client's relay address: the path of a
// datagram from the network, through the relay socket, to the client.
func BenchmarkRelayPeer(b *testing.B) {
	s, _ := startServer(b, Config{AllowLoopback: true})
	ca, ra := allocate(b, s, "udp", "a")
	peer, _ := udpPair(b)
	if err := ca.CreatePermission(peer.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	exchange(b, ra, peer, []byte("warm up")) // starts the channel binding
	b.SetBytes(benchSize)
	b.ResetTimer()
	cpu0 := cpuTime()
	rate := pump(b, peer, ra, b.N)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(rate, "MB/s-turn")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/dgram-turn")
}

// cpuTime is the CPU time (user and system) of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func udpPair(b *testing.B) (net.PacketConn, net.PacketConn) {
	var conns [2]net.PacketConn
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		tuneUDP(c)
		b.Cleanup(func() { _ = c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}

// pump sends n datagrams from src to dst with at most benchWindow in
// flight and returns the rate in MB/s. A lost datagram fails the benchmark.
func pump(b *testing.B, src, dst net.PacketConn, n int) float64 {
	var received atomic.Int64
	progress := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		for received.Load() < int64(n) {
			_ = dst.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, _, err := dst.ReadFrom(buf); err != nil {
				done <- err
				return
			}
			received.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}
		done <- nil
	}()
	payload := make([]byte, benchSize)
	start := time.Now()
	for sent := 0; sent < n; {
		if sent-int(received.Load()) >= benchWindow {
			select {
			case <-progress:
			case err := <-done:
				b.Fatalf("receiver stopped after %d of %d: %v", received.Load(), sent, err)
			}
			continue
		}
		if _, err := src.WriteTo(payload, dst.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	if err := <-done; err != nil {
		b.Fatalf("received %d of %d: %v", received.Load(), n, err)
	}
	return float64(n) * benchSize / time.Since(start).Seconds() / 1e6
}
