package clustertest

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
)

// Balancer is a TCP load balancer in front of cloakroom nodes, as an
// operator would run one: each new connection goes to the live backend
// with the fewest connections open through it; a backend that refuses
// is skipped.
type Balancer struct {
	Addr     string // 127.0.0.1:PORT
	backends []string
	ln       net.Listener
	wg       sync.WaitGroup

	mu     sync.Mutex
	active []int
	total  []int
	conns  map[net.Conn]struct{}
	held   bool
}

// NewBalancer listens on 127.0.0.1 and forwards to backends (HOST:PORT)
// until t ends.
func NewBalancer(t testing.TB, backends ...string) *Balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{Addr: ln.Addr().String(), backends: backends, ln: ln,
		active: make([]int, len(backends)), total: make([]int, len(backends)), conns: make(map[net.Conn]struct{})}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

// Active returns how many connections are open through each backend.
func (b *Balancer) Active() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.active...)
}

// Hold cuts every connection through the balancer and refuses new ones
// until Release: the clients behind it are offline (and retrying).
func (b *Balancer) Hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = true
	for c := range b.conns {
		_ = c.Close()
	}
}

// Release lets connections through again.
func (b *Balancer) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = false
}

func (b *Balancer) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Balancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.forward(c)
		}()
	}
}

// order lists the backends, fewest open connections first.
func (b *Balancer) order() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	idx := make([]int, len(b.backends))
	for i := range idx {
		idx[i] = i
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && (b.active[idx[j]] < b.active[idx[j-1]] ||
			b.active[idx[j]] == b.active[idx[j-1]] && b.total[idx[j]] < b.total[idx[j-1]]); j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

func (b *Balancer) forward(c net.Conn) {
	b.mu.Lock()
	held := b.held
	b.mu.Unlock()
	if held {
		_ = c.Close()
		return
	}
	var up net.Conn
	var which int
	for _, i := range b.order() {
		var d net.Dialer
		conn, err := d.DialContext(context.Background(), "tcp", b.backends[i])
		if err == nil {
			up, which = conn, i
			break
		}
	}
	if up == nil {
		_ = c.Close()
		return
	}
	b.mu.Lock()
	if b.held { // held while this one was dialing
		b.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	b.active[which]++
	b.total[which]++
	b.conns[c], b.conns[up] = struct{}{}, struct{}{}
	b.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
	b.mu.Lock()
	b.active[which]--
	delete(b.conns, c)
	delete(b.conns, up)
	b.mu.Unlock()
}
