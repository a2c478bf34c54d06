package main

import (
	"context"
	"io"

	"cloakroom/bench"
)

// benchRuns are the `cloakroom bench` subcommands.
var benchRuns = map[string]func(context.Context, bench.Config) error{
	"relay":  bench.RunRelay,
	"p2p":    bench.RunP2P,
	"turn":   bench.RunTURN,
	"idle":   bench.RunIdle,
	"fanout": bench.RunFanout,
}

// cmdBench parses the bench flags and runs one benchmark of package bench.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := bench.Config{Out: stdout}
	fs := newFlags("bench", stderr)
	fs.Var(newPositiveSize(&cfg.Size, bench.DefaultSize), "size", "bytes to move")
	fs.Var(newPositiveSize(&cfg.RelayMax, bench.DefaultRelayMax), "relay-max-bytes", "relay store cap of the benchmark server")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the test file and received copies (default: a temp dir)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.IntVar(&cfg.Pairs, "pairs", bench.DefaultPairs, "bench p2p, turn: bare pion pairs at once in the parallel baseline")
	fs.IntVar(&cfg.Conns, "conns", bench.DefaultConns, "bench idle: WebSocket connections")
	fs.IntVar(&cfg.Rooms, "rooms", bench.DefaultRooms, "bench fanout: rooms")
	fs.IntVar(&cfg.Members, "members", bench.DefaultMembers, "bench idle, fanout: members per room")
	fs.Float64Var(&cfg.MsgRate, "msg-rate", bench.DefaultMsgRate, "bench fanout: messages per second per member")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "bench fanout: measured time; bench idle: how long the connections stay")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	run := benchRuns[fs.Arg(0)]
	if fs.NArg() != 1 || run == nil {
		return usagef("bench: want `bench relay`, `bench p2p`, `bench turn`, `bench idle` or `bench fanout`")
	}
	return run(ctx, cfg)
}
