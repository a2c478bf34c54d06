package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"cloakroom/cluster/clustertest"
)

// TestCLIClusterFailoverChat: nothing queued is lost and nothing is
// delivered twice when a node and a NATS server die. Members A and B chat
// through the load balancer on two nodes; C comes through a balancer of
// its own, which is then held: C is offline (retrying). A sends numbered
// lines, now queued on the relay for C (B gets them live). Then A sends
// more lines while its node is SIGKILLed, together with the NATS server
// B's node is connected to: A reconnects to a surviving node. C is let
// back to a surviving node. B and C must each print every line exactly
// once.
func TestCLIClusterFailoverChat(t *testing.T) {
	c := startFailoverCluster(t)
	connected := regexp.MustCompile(`\* connected`)
	a, aIn := startIn(t, true, "chat", c.link)
	a.waitLine(t, connected, 20*time.Second)
	aNode := slices.Index(c.lb.Active(), 1)
	b, bIn := startIn(t, true, "chat", c.link)
	b.waitLine(t, connected, 20*time.Second)
	bNode := slices.IndexFunc(c.lb.Active(), func(n int) bool { return n == 1 })
	if bNode == aNode {
		bNode = slices.Index(c.lb.Active()[aNode+1:], 1) + aNode + 1
	}
	lbC := clustertest.NewBalancer(t, c.addrs...)
	cc, cIn := startIn(t, true, "chat", strings.Replace(c.link, c.lb.Addr, lbC.Addr, 1))
	cc.waitLine(t, connected, 20*time.Second)
	say(t, aIn, "hello")
	waitChat(t, cc, []string{"hello"}, 20*time.Second)
	lbC.Hold()
	a.waitLine(t, regexp.MustCompile(`^stderr: \* [0-9a-f]{8} offline$`), 20*time.Second)

	var queued, burst []string
	for i := range 50 {
		queued = append(queued, fmt.Sprintf("queued %d", i+1))
		say(t, aIn, queued[i])
	}
	waitChat(t, b, queued, 30*time.Second) // on B's node: they crossed NATS
	for i := range 40 {
		burst = append(burst, fmt.Sprintf("burst %d", i+1))
	}
	// The burst goes on while the node dies: some lines are in flight.
	half, sent := make(chan struct{}), make(chan error, 1)
	go func() {
		var err error
		for i, l := range burst {
			if i == len(burst)/2 {
				close(half)
			}
			if _, err = fmt.Fprintln(aIn, l); err != nil {
				break
			}
			time.Sleep(2 * time.Millisecond) // spread the lines around the kill
		}
		sent <- err
	}()
	<-half
	c.kill(t, aNode, bNode)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	a.waitLine(t, regexp.MustCompile(`\* reconnecting`), 20*time.Second)
	lbC.Release()
	all := slices.Concat(queued, burst)
	for name, p := range map[string]*proc{"B": b, "C": cc} {
		got := waitChat(t, p, all, 60*time.Second)
		for _, l := range all {
			if got[l] != 1 {
				t.Errorf("%s printed %q %d times, want once", name, l, got[l])
			}
		}
	}
	for _, in := range []io.WriteCloser{aIn, bIn, cIn} {
		_ = in.Close()
	}
	for _, p := range []*proc{a, b, cc} {
		_ = p.wait(t, 10*time.Second)
	}
}

func say(t *testing.T, in io.Writer, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(in, line); err != nil {
		t.Fatal(err)
	}
}

// chatLineRe is a chat line as `cloakroom chat` prints it: author, maybe
// "(late, sent …)" or "(earlier, …)", text.
var chatLineRe = regexp.MustCompile(`^[0-9a-f]{8}(?: \([^)]*\))?: (.*)$`)

// waitChat waits until p has printed every one of texts as a chat line and
// returns how many times it printed each text.
func waitChat(t *testing.T, p *proc, texts []string, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := map[string]int{}
		for _, l := range p.output() {
			if m := chatLineRe.FindStringSubmatch(l); m != nil {
				got[m[1]]++
			}
		}
		missing := slices.DeleteFunc(slices.Clone(texts), func(s string) bool { return got[s] > 0 })
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not print %d of the chat lines within %s: %q", p.cmd.Args[:2], len(missing), timeout, missing)
		}
		time.Sleep(50 * time.Millisecond) // the output gives no event per line set
	}
}
