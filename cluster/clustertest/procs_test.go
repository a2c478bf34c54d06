package clustertest

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// TestStartProcesses: three natsd processes form a JetStream cluster; a
// client's connection shows in its server's /connz; after one process is
// SIGKILLed, a replicated memory stream still takes messages and keeps
// what it had, and the client has moved to a surviving server.
func TestStartProcesses(t *testing.T) {
	c := StartProcesses(t, 3)
	nc, err := nats.Connect(c.URL(), nats.Name("probe"), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names, err := c.Procs[0].Clients(ctx)
	if err != nil || !slices.Contains(names, "probe") {
		t.Fatalf("connz of nats-1: %q, %v; want the probe", names, err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"},
		Storage: jetstream.MemoryStorage, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t", []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := c.Procs[0].Kill(); err != nil {
		t.Fatal(err)
	}
	if ws, ok := c.Procs[0].cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("nats-1 ended with %v, want killed", c.Procs[0].cmd.ProcessState)
	}
	for {
		_, err := js.Publish(ctx, "t", []byte("after"))
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
			t.Fatalf("publish after the kill: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // a new stream leader is being elected
	}
	if u := nc.ConnectedUrl(); u == c.URLs[0] || u == "" {
		t.Fatalf("connected to %q after nats-1 was killed", u)
	}
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("stream after the kill: %+v, %v; want 2 messages", info, err)
	}
}

// TestRoutePortBusy: a natsd whose route port another program holds says
// so (StartProcesses tries other ports only on this error), and a route
// port from freePort is below the kernel's ephemeral range.
func TestRoutePortBusy(t *testing.T) {
	bin, err := natsdBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	p, err := startProcess(t, bin, "-name", "nats-1", "-cluster-port", port,
		"-routes", "nats-route://127.0.0.1:"+port, "-peers", "1", "-store", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.waitReady(30 * time.Second); !errors.Is(err, ErrRoutePortBusy) {
		t.Fatalf("natsd on a held route port: %v; want %v", err, ErrRoutePortBusy)
	}
	if fp, err := freePort(); err != nil || fp >= 32768 {
		t.Fatalf("freePort: %d, %v; want a port below the ephemeral range", fp, err)
	}
}
