package main

import (
	"context"
	"io"

	"cloakroom/bench"
)

// benchRuns are the `cloakroom bench` subcommands.
var benchRuns = map[string]func(context.Context, bench.Config) error{
	"relay":   bench.RunRelay,
	"p2p":     bench.RunP2P,
	"turn":    bench.RunTURN,
	"idle":    bench.RunIdle,
	"fanout":  bench.RunFanout,
	"cluster": bench.RunCluster,
}

// cmdBench parses the bench flags and runs one benchmark of package bench.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := bench.Config{Out: stdout}
	fs := newFlags("bench", stderr)
	fs.Var(newPositiveSize(&cfg.Size, bench.DefaultSize), "size", "bytes to move")
	fs.Var(newPositiveSize(&cfg.RelayMax, bench.DefaultRelayMax), "relay-max-bytes", "bench relay: relay store cap of the benchmark server (default: serve's)")
	fs.Var(newByteSize(&cfg.UploadRate, defaultUploadRate), "relay-upload-rate", "bench relay: the server's upload rate per public address, like serve's (0: no limit)")
	fs.Var(newByteSize(&cfg.UploadRateLAN, 0), "relay-upload-rate-lan", "bench relay: the server's upload rate per loopback or LAN address, like serve's (0: no limit)")
	fs.StringVar(&cfg.Croc, "croc", "", "bench relay: croc executable for the croc baseline (default: croc in PATH; scripts/croc.sh installs it; - for none)")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the test file and received copies (default: a temp dir)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.IntVar(&cfg.Pairs, "pairs", bench.DefaultPairs, "bench p2p, turn: bare pion pairs at once in the parallel baseline")
	fs.IntVar(&cfg.Conns, "conns", bench.DefaultConns, "bench idle: WebSocket connections; bench cluster: per node")
	fs.IntVar(&cfg.Rooms, "rooms", bench.DefaultRooms, "bench fanout: rooms")
	fs.IntVar(&cfg.Members, "members", bench.DefaultMembers, "bench idle, fanout: members per room")
	fs.Float64Var(&cfg.MsgRate, "msg-rate", bench.DefaultMsgRate, "bench fanout: messages per second per member")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "bench fanout: measured time; bench idle: how long the connections stay")
	fs.StringSliceVar(&cfg.NATS, "nats", nil, "bench cluster: use this NATS cluster (nats://HOST:PORT,...; JetStream on) instead of 3 servers in the bench process")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.UploadRate, cfg.UploadRateLAN = orNoLimit(cfg.UploadRate), orNoLimit(cfg.UploadRateLAN)
	run := benchRuns[fs.Arg(0)]
	if fs.NArg() != 1 || run == nil {
		return usagef("bench: want `bench relay`, `bench p2p`, `bench turn`, `bench idle`, `bench fanout` or `bench cluster`")
	}
	return run(ctx, cfg)
}

// orNoLimit maps a command line's 0 ("no limit") to signaling's.
func orNoLimit(n int64) int64 {
	if n == 0 {
		return noLimit
	}
	return n
}
