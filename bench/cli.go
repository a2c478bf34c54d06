package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"cloakroom/internal/crypto"
	"cloakroom/turn"
)

// timeCLI moves src from a `cloakroom send` process to a `cloakroom recv`
// process (the real binary, cfg.Serve[0]) through a signaling server and
// ts in this process, on transport mode. The clock runs from the start of
// send until both commands have exited: the whole transfer as a user
// sees it, with the sender's hashing, connection setup, the receiver's
// check and its disk writes. cpu is both children's user+system time.
// links is recv's --links (stripes).
func timeCLI(ctx context.Context, exe string, ts *turn.Server, src, mode, outDir string, links int) (wall, cpu time.Duration, err error) {
	url, stop, err := signalingWithTURN(ts)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(outDir)
	secret, err := crypto.NewSecret()
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	// The link goes in the environment, not the arguments (env:NAME).
	env := append(os.Environ(), "CLOAKROOM_BENCH_LINK="+secret.Link(url))
	var recvErr, sendErr bytes.Buffer
	recv := exec.CommandContext(ctx, exe, "recv", "--transport", mode, "--links", strconv.Itoa(links), "--count", "1", "-o", outDir, "env:CLOAKROOM_BENCH_LINK")
	recv.Env, recv.Stderr = env, &recvErr
	if err := recv.Start(); err != nil {
		return 0, 0, fmt.Errorf("bench: start recv: %w", err)
	}
	defer func() { _ = recv.Process.Kill() }()
	time.Sleep(500 * time.Millisecond) // recv joins first, as a user who shares the link would
	send := exec.CommandContext(ctx, exe, "send", "--transport", mode, "env:CLOAKROOM_BENCH_LINK", src)
	send.Env, send.Stderr = env, &sendErr
	start := time.Now()
	if err := send.Run(); err != nil {
		return 0, 0, fmt.Errorf("bench: send: %w: %s", err, tail(sendErr.Bytes()))
	}
	if err := recv.Wait(); err != nil {
		return 0, 0, fmt.Errorf("bench: recv: %w: %s", err, tail(recvErr.Bytes()))
	}
	wall = time.Since(start)
	got, err := os.Stat(filepath.Join(outDir, filepath.Base(src)))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: recv wrote no file: %w", err)
	}
	if want, _ := os.Stat(src); want == nil || got.Size() != want.Size() {
		return 0, 0, fmt.Errorf("bench: received %d bytes", got.Size())
	}
	return wall, childCPU(send.ProcessState) + childCPU(recv.ProcessState), nil
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

func childCPU(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
