package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"cloakroom/client"
	"cloakroom/internal/protocol"
)

// swallowProxy forwards TCP connections to a server; once swallowing, it
// drops what clients write (their bytes never reach the server, as when a
// node dies before it stored or published them), and cut closes every
// connection. New connections pass again.
type swallowProxy struct {
	addr   string
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	swallow bool
	conns   []net.Conn
}

func newSwallowProxy(t *testing.T, target string) *swallowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &swallowProxy{addr: ln.Addr().String(), target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *swallowProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(up, p.reader(c))
			_ = up.Close()
		}()
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(c, up)
			_ = c.Close()
		}()
	}
}

// reader is c with what arrives while swallowing dropped.
func (p *swallowProxy) reader(c net.Conn) io.Reader {
	return readerFunc(func(b []byte) (int, error) {
		for {
			n, err := c.Read(b)
			p.mu.Lock()
			drop := p.swallow
			p.mu.Unlock()
			if !drop || err != nil {
				return n, err
			}
		}
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func (p *swallowProxy) setSwallow(on bool) {
	p.mu.Lock()
	p.swallow = on
	p.mu.Unlock()
}

// cut closes every connection made so far.
func (p *swallowProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// TestChatWrittenAgainAfterReconnect: a chat the client wrote on a
// connection that broke before the server got it (a node that died before
// it stored or published it) is written again on the next connection and
// arrives once; a chat the server did get, written again too, is not shown
// twice. (Bob also gets the last protocol.HistoryLength chats of alice's
// history when she is back.)
func TestChatWrittenAgainAfterReconnect(t *testing.T) {
	ctx := testCtx(t)
	ts := newServer(t, serverOpts{})
	proxy := newSwallowProxy(t, strings.TrimPrefix(ts.URL, "http://"))
	secret := newSecret(t)
	alice := dialPeer(ctx, t, secret.Link("http://"+proxy.addr), "alice", nil)
	bob := dialPeer(ctx, t, secret.Link(ts.URL), "bob", nil)
	meshOnline(ctx, t, alice, bob)
	if err := alice.SendChat(ctx, "stored"); err != nil {
		t.Fatal(err)
	}
	waitChat(ctx, t, bob, "stored", func(c client.Chat) bool { return c.Text == "stored" })
	proxy.setSwallow(true)
	// More lost chats than the chat history a member hands a returning
	// one (protocol.HistoryLength): "in flight" can come back only by
	// being written again.
	lost := []string{"in flight"}
	for i := range protocol.HistoryLength {
		lost = append(lost, fmt.Sprintf("filler %d", i+1))
	}
	for _, text := range lost {
		if err := alice.SendChat(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	proxy.cut()
	proxy.setSwallow(false)
	waitState(ctx, t, alice, "restored", 1)
	if err := alice.SendChat(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	waitChat(ctx, t, bob, "in flight", func(c client.Chat) bool { return c.Text == "in flight" })
	waitChat(ctx, t, bob, "the last filler", func(c client.Chat) bool { return c.Text == lost[len(lost)-1] })
	waitChat(ctx, t, bob, "after", func(c client.Chat) bool { return c.Text == "after" })
	// Alice's items reach bob in the order she wrote them: the copies went
	// before "after".
	got := bob.chats.snapshot()
	for _, text := range append([]string{"stored", "after"}, lost...) {
		if n := count(got, func(c client.Chat) bool { return c.Text == text }); n != 1 {
			t.Errorf("bob got %q %d times, want once: %+v", text, n, got)
		}
	}
}
