// Command cloakroom is the one Cloakroom binary: the server (`serve`, the
// default) and the command-line client (`new`, `send`, `recv`, `chat`), plus
// `bench`. See README.md and DESIGN.md's CLI contract.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"cloakroom/internal/safetext"

	flag "github.com/spf13/pflag"
)

const usage = `usage: cloakroom [command] [flags]

commands:
  serve   run the server (default): web client, signaling, relay
  new     make a room: prints its link, mini code and QR code
  send    send files to the members of a room
  recv    receive files from a room
  chat    chat in a room: stdin lines out, room messages in
  ls      list the files shared in a room that a member online holds
  get     fetch one file of a room's library (by name or id)
  keyring keep room links under names in a passphrase-sealed file
          (keyring add NAME [LINK] | ls | rm NAME | passwd); then LINK key:NAME
  bench   measure throughput and capacity (bench relay|p2p|turn|idle|fanout)

Run "cloakroom COMMAND --help" for the flags of a command.

LINK, where a command takes one, is the room link or mini code, or, to keep
the room's secret out of the process list, @FILE (read from FILE),
env:NAME (the environment variable NAME) or key:NAME (the room kept under
NAME in the keyring: "cloakroom keyring --help").
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	endProfile := startCPUProfile(os.Getenv("CLOAKROOM_CPUPROFILE"), os.Stderr)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	endProfile()
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cloakroom:", safetext.Line(err.Error())) // errors can quote the server or a member
		}
		os.Exit(exitCode(err))
	}
}

// startCPUProfile writes a CPU profile of the whole command to path
// (CLOAKROOM_CPUPROFILE, for measuring any command: BENCHMARKS.md) until
// the returned function is called; with no path it does nothing. A
// "{pid}" in path becomes the process id, so that the nodes a benchmark
// starts each write their own profile.
func startCPUProfile(path string, stderr io.Writer) func() {
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "{pid}", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "cloakroom: CLOAKROOM_CPUPROFILE:", err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	if errors.Is(err, errNothingToGet) {
		return 3
	}
	return 1
}

// run dispatches to a subcommand; it is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return cmdServe(ctx, args, stdout, stderr)
	case "new":
		return cmdNew(ctx, args, stdout, stderr)
	case "send":
		return cmdSend(ctx, args, stdout, stderr)
	case "recv":
		return cmdRecv(ctx, args, stdout, stderr)
	case "chat":
		return cmdChat(ctx, args, stdin, stdout, stderr)
	case "ls":
		return cmdLs(ctx, args, stdout, stderr)
	case "get":
		return cmdGet(ctx, args, stdout, stderr)
	case "keyring":
		return cmdKeyring(ctx, args, stdin, stdout, stderr)
	case "bench":
		return cmdBench(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}
