package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mdp/qrterminal/v3"
	flag "github.com/spf13/pflag"

	"cloakroom/client"
	"cloakroom/internal/crypto"
	"cloakroom/internal/keyring"
	"cloakroom/internal/protocol"
	"cloakroom/internal/safetext"
)

// clientFlags are accepted by every client subcommand.
type clientFlags struct {
	server     string
	transport  protocol.Transport
	logLevel   string
	iceTimeout time.Duration
	relayWait  time.Duration
	stagger    time.Duration
	links      int
	keyring    keyringFlags
}

func (cf *clientFlags) register(fs *flag.FlagSet, withTransport bool) {
	fs.StringVar(&cf.server, "server", os.Getenv("CLOAKROOM_SERVER"), "server URL for mini codes (default $CLOAKROOM_SERVER)")
	if withTransport {
		fs.Var(newTransportFlag(&cf.transport, protocol.TransportAuto), "transport", "path for files: auto (best that connects), p2p (direct only), turn (through the TURN relay) or relay (through the server)")
		// Hidden: tests shorten the wait before a failed direct attempt
		// falls back to TURN (the client's default is 10 s).
		fs.DurationVar(&cf.iceTimeout, "ice-timeout", 0, "bound on each peer-to-peer connection attempt (0: the client's default)")
		_ = fs.MarkHidden("ice-timeout")
		fs.DurationVar(&cf.relayWait, "relay-wait", client.DefaultRelayWait, "auto: how long a send waits for a peer-to-peer session before it starts a recipient on the relay; a session that connects later takes the rest of the file over (-1s: the relay only after every peer-to-peer attempt failed)")
		fs.DurationVar(&cf.stagger, "rung-stagger", client.DefaultRungStagger, "auto: how long the direct attempt runs alone before the TURN attempt starts beside it (-1s: TURN only after direct failed)")
		fs.IntVar(&cf.links, "links", client.DefaultLinks, "peer connections a large file (64 MiB or more) is fetched over from its sender side by side once the first carries 16 MB/s or more, each its own SCTP association (1: one)")
	}
	fs.StringVar(&cf.logLevel, "log-level", "warn", "debug, info, warn or error")
	cf.keyring.register(fs)
}

func (cf *clientFlags) dial(ctx context.Context, invite string, stderr io.Writer, opts client.Options) (*client.Client, error) {
	log, err := newLogger(cf.logLevel, stderr)
	if err != nil {
		return nil, err
	}
	opts.Server, opts.Transport, opts.Logger = cf.server, cf.transport, log
	opts.Proxy = envProxy(stderr)
	if cf.iceTimeout < 0 {
		return nil, usagef("--ice-timeout %s: want a positive duration", cf.iceTimeout)
	}
	opts.ICETimeout = cf.iceTimeout
	// 0 is "the default" to the client; on the command line it means at once.
	opts.RelayWait, opts.RungStagger = cmp.Or(cf.relayWait, time.Nanosecond), cmp.Or(cf.stagger, time.Nanosecond)
	if cf.links < 0 || cf.links > 8 {
		return nil, usagef("--links %d: want 1 to 8", cf.links)
	}
	opts.Links = cf.links
	if opts.OnFallback == nil {
		opts.OnFallback = func(err error) {
			fmt.Fprintf(stderr, "cloakroom: connected over HTTP fallback (WebSocket refused: %v)\n", err)
		}
	}
	if invite, err = resolveLink(ctx, invite, &cf.keyring, stderr); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.Dial(dctx, invite, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func cmdNew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlags("new", stderr)
	cf.register(fs, false)
	noQR := fs.Bool("no-qr", false, "do not print the QR code")
	save := fs.String("save", "", "also keep the room in the keyring under NAME (then LINK key:NAME)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *save != "" {
		if err := keyring.ValidName(*save); err != nil {
			return usagef("new --save: %w", err)
		}
	}
	if fs.NArg() > 0 {
		return usagef("new: unexpected argument %q", fs.Arg(0))
	}
	if cf.server == "" {
		return usagef("new: --server URL is required (the address members will use, e.g. http://127.0.0.1:8080)")
	}
	server := strings.TrimRight(cf.server, "/")
	if !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
		return usagef("new: --server %q: want an http:// or https:// URL", cf.server)
	}
	secret, err := crypto.NewSecret()
	if err != nil {
		return fmt.Errorf("new: %w", err)
	}
	link := secret.Link(server)
	fmt.Fprintln(stdout, link)
	fmt.Fprintln(stdout, secret.MiniCode())
	if !*noQR {
		qrterminal.GenerateHalfBlock(link, qrterminal.L, stdout)
	}
	checkServer(ctx, server, stderr)
	if *save != "" {
		return keyringAdd(ctx, &cf.keyring, *save, link, false, stderr)
	}
	return nil
}

// checkServer warns (without failing) when the server does not answer.
func checkServer(ctx context.Context, server string, stderr io.Writer) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, server+"/healthz", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "cloakroom: warning: server %s does not answer (%v); the room works once it runs\n", server, err)
		return
	}
	resp.Body.Close()
}

func cmdSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlags("send", stderr)
	cf.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usagef("send: want LINK FILE…")
	}
	files := fs.Args()[1:]
	for _, f := range files {
		if st, err := os.Stat(f); err != nil {
			return fmt.Errorf("send: %w", err)
		} else if !st.Mode().IsRegular() {
			return fmt.Errorf("send: %s is not a regular file", f)
		}
	}
	bars := newBars(stderr)
	c, err := cf.dial(ctx, fs.Arg(0), stderr, client.Options{OnProgress: bars.update, OnState: stateLine(stderr)})
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer c.Close()
	defer watchFiles(ctx, c, bars.println)()
	if len(c.OnlineMembers()) == 0 {
		fmt.Fprintln(stderr, "waiting for another member to join the room…")
	}
	for _, f := range files {
		rep, err := c.SendFile(ctx, f)
		bars.finish()
		if rep != nil {
			for _, m := range rep.Delivered {
				fmt.Fprintf(stderr, "%s: delivered to %s via %s\n", rep.Name, short(m), rep.Paths[m])
			}
			for m, why := range rep.Failed {
				fmt.Fprintf(stderr, "%s: NOT delivered to %s: %s\n", rep.Name, short(m), safetext.Line(why))
			}
		}
		if err != nil {
			return err
		}
		if rep.Uploaded > 0 || rep.Rounds > 1 {
			fmt.Fprintf(stderr, "%s: relay upload %d bytes in %d round(s) for a %d-byte file; %d bytes peer-to-peer\n", rep.Name, rep.Uploaded, rep.Rounds, rep.Size, rep.Served)
		}
		fmt.Fprintf(stdout, "sent %s (%d bytes) to %d member(s) in %s\n", rep.Name, rep.Size, len(rep.Delivered), rep.Duration.Round(time.Millisecond))
	}
	return nil
}

func cmdRecv(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlags("recv", stderr)
	cf.register(fs, true)
	dir := fs.StringP("output", "o", ".", "directory to write received files to")
	count := fs.Int("count", 0, "exit after this many files (0: run until interrupted)")
	newOnly := fs.Bool("new-only", false, "only files sent from now on, not the earlier files members online still hold")
	sequential := fs.Bool("sequential", false, "fetch files lowest chunk first, so a partial file in -o DIR (.cloakroom-….part) is playable from its start while the rest arrives")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("recv: want exactly one LINK")
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		return fmt.Errorf("recv: output directory %q does not exist", *dir)
	}
	bars := newBars(stderr)
	c, err := cf.dial(ctx, fs.Arg(0), stderr, client.Options{Dir: *dir, OnProgress: bars.update, OnState: stateLine(stderr), FetchEarlier: !*newOnly, Sequential: *sequential})
	if err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	defer c.Close()
	fmt.Fprintln(stderr, "in the room; waiting for files…")
	for n := 0; *count == 0 || n < *count; {
		f, err := c.NextFile(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("recv: %w", err)
		}
		bars.finish()
		if f.Err != nil {
			fmt.Fprintf(stderr, "cloakroom: %s from %s failed: %s\n", client.SafeName(f.Name), short(f.From), safetext.Line(f.Err.Error()))
			continue
		}
		if f.Resumed > 0 {
			fmt.Fprintf(stderr, "%s: resumed with %d of %d bytes already here\n", client.SafeName(f.Name), f.Resumed, f.Size)
		}
		sayHelpers(stderr, f)
		fmt.Fprintln(stdout, f.Path)
		n++
	}
	return nil
}

// stateLine reports the connection's state changes on stderr.
func stateLine(stderr io.Writer) func(protocol.ConnState) {
	return func(s protocol.ConnState) {
		switch s {
		case protocol.StateReconnecting:
			fmt.Fprintln(stderr, "cloakroom: connection to the server lost; reconnecting…")
		case protocol.StateRestored:
			fmt.Fprintln(stderr, "cloakroom: connection restored")
		}
	}
}

func cmdChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlags("chat", stderr)
	cf.register(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("chat: want exactly one LINK")
	}
	out := &lockedWriter{w: stdout}
	c, err := cf.dial(ctx, fs.Arg(0), stderr, client.Options{
		OnChat: func(m client.Chat) { printChat(out, stderr, m) },
		OnPresence: func(m client.Member, ev string) {
			fmt.Fprintf(stderr, "* %s %s\n", short(m.ID), ev)
		},
		OnState: func(s protocol.ConnState) { fmt.Fprintf(stderr, "* %s\n", s) },
	})
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	defer c.Close()
	defer watchFiles(ctx, c, func(line string) { fmt.Fprintln(stderr, line) })()
	// Who is already here: presence events only tell of changes after our
	// join, so without this a member who came first would stay unseen.
	members := c.Members()
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	for _, m := range members {
		state := protocol.EventOffline
		if m.Online {
			state = protocol.EventOnline
		}
		fmt.Fprintf(stderr, "* %s %s\n", short(m.ID), state)
	}
	lines := make(chan string)
	go readLines(stdin, lines)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if err := c.SendChat(ctx, line); err != nil {
				return fmt.Errorf("chat: %w", err)
			}
		case <-c.Done():
			return fmt.Errorf("chat: %w", c.Err())
		case <-ctx.Done():
			return nil
		}
	}
}

// watchFiles reports the files other members send while chat or send runs:
// every member of a room receives its files, and these commands, which have
// no --output, save them in the working directory. The returned func stops
// the watcher and waits for it; call it before closing the client.
func watchFiles(ctx context.Context, c *client.Client, say func(string)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f, err := c.NextFile(ctx)
			if err != nil {
				return
			}
			name := client.SafeName(f.Name)
			if f.Err != nil {
				say(fmt.Sprintf("* %s sent %s: not received: %s", short(f.From), name, safetext.Line(f.Err.Error())))
				continue
			}
			say(fmt.Sprintf("* %s sent %s (%d bytes), saved as %s", short(f.From), name, f.Size, f.Path))
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// readLines sends stdin's lines to out and closes it at EOF. It is the one
// goroutine that may outlive its caller: a blocked read on stdin cannot be
// cancelled, and the process exits right after.
func readLines(r io.Reader, out chan<- string) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), client.MaxChatBytes)
	for sc.Scan() {
		out <- sc.Text()
	}
}

// printChat prints a chat line; a gap before it goes to stderr, and a
// message that arrived after later ones says so (and when it was sent).
func printChat(out, stderr io.Writer, m client.Chat) {
	who := author(m)
	if m.Missing > 0 {
		fmt.Fprintf(stderr, "* %d message(s) from %s did not arrive\n", m.Missing, who)
	}
	if m.History {
		fmt.Fprintf(out, "%s (earlier, %s): %s\n", who, m.Sent.Local().Format("15:04"), safetext.Line(m.Text))
		return
	}
	if m.Late {
		fmt.Fprintf(out, "%s (late, sent %s): %s\n", who, m.Sent.Format("15:04:05"), safetext.Line(m.Text))
		return
	}
	fmt.Fprintf(out, "%s: %s\n", who, safetext.Line(m.Text))
}

// author is how a chat's author is printed: its short id, after the display
// name it chose if it sent one (cleaned, at most protocol.MaxNameChars
// characters; names are not unique, so the id stays).
func author(m client.Chat) string {
	name := strings.Join(strings.Fields(safetext.Line(m.Name)), " ")
	if r := []rune(name); len(r) > protocol.MaxNameChars {
		name = strings.TrimSpace(string(r[:protocol.MaxNameChars]))
	}
	if name == "" {
		return short(m.From)
	}
	return name + " (" + short(m.From) + ")"
}

// short is the first 8 characters of a member id, safe to print (ids are
// checked by the server, but a client does not rely on that).
func short(id string) string {
	id = safetext.Line(id)
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
