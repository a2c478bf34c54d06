package main

// `cloakroom keyring add|ls|rm|passwd` and the LINK form key:NAME: room links
// kept under names in one file sealed with a passphrase
// (internal/keyring; docs/SECURITY.md "CLI keyring").

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	flag "github.com/spf13/pflag"
	"golang.org/x/term"

	"cloakroom/internal/crypto"
	"cloakroom/internal/keyring"
)

const keyringUsage = `usage: cloakroom keyring COMMAND [flags]

  add NAME [LINK]   keep LINK (a room link or mini code, or @FILE, env:NAME)
                    under NAME; without LINK it is read from the terminal
                    (not echoed) or from stdin's first line
  ls                list the names (never the links)
  rm NAME           forget NAME
  passwd            change the passphrase (the new one from
                    --new-passphrase-file FILE, else $CLOAKROOM_NEW_PASSPHRASE,
                    else asked twice on the terminal)

Then give key:NAME wherever a command takes a LINK.

The keyring is --keyring FILE, else $CLOAKROOM_KEYRING, else
$XDG_CONFIG_HOME/cloakroom/keyring (~/.config/cloakroom/keyring). Its
passphrase comes from --passphrase-file FILE, else $CLOAKROOM_PASSPHRASE,
else it is asked on the terminal (twice for a new keyring); without any of
them the command fails rather than wait.

flags:
`

// keyringFlags locate the keyring and its passphrase; every command that
// takes a LINK has them (for key:NAME).
type keyringFlags struct {
	path        string
	passFile    string
	newPassFile string // keyring passwd only
}

func (kf *keyringFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&kf.path, "keyring", "", "keyring file for key:NAME (default $CLOAKROOM_KEYRING, else $XDG_CONFIG_HOME/cloakroom/keyring)")
	fs.StringVar(&kf.passFile, "passphrase-file", "", "read the keyring's passphrase from FILE's first line (default $CLOAKROOM_PASSPHRASE, else asked on the terminal)")
}

// file is the keyring's path.
func (kf *keyringFlags) file() (string, error) {
	if kf != nil && kf.path != "" {
		return kf.path, nil
	}
	if p := os.Getenv("CLOAKROOM_KEYRING"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir() // $XDG_CONFIG_HOME, else ~/.config
	if err != nil {
		return "", fmt.Errorf("keyring: %w (give --keyring FILE or set CLOAKROOM_KEYRING)", err)
	}
	return filepath.Join(dir, "cloakroom", "keyring"), nil
}

// errNoPassphrase: nowhere to get the passphrase from without waiting on
// a stdin that is not a terminal (CI, pipes).
var errNoPassphrase = errors.New("keyring: no passphrase: set CLOAKROOM_PASSPHRASE, give --passphrase-file FILE, or run on a terminal")

// passphrase returns the keyring's passphrase (see keyringUsage). A new
// keyring's (create) is asked twice on a terminal.
func (kf *keyringFlags) passphrase(ctx context.Context, path string, create bool, stderr io.Writer) ([]byte, error) {
	if kf != nil && kf.passFile != "" {
		return passphraseFromFile(kf.passFile, stderr)
	}
	if p, ok := os.LookupEnv("CLOAKROOM_PASSPHRASE"); ok {
		if p == "" {
			return nil, errors.New("keyring: CLOAKROOM_PASSPHRASE is empty")
		}
		return []byte(p), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, errNoPassphrase
	}
	if !create {
		return readHidden(ctx, fmt.Sprintf("passphrase for keyring %s: ", path), stderr)
	}
	fmt.Fprintf(stderr, "making a new keyring %s\n", path)
	return askTwice(ctx, stderr)
}

// newPassphrase is the new passphrase of `keyring passwd`.
func (kf *keyringFlags) newPassphrase(ctx context.Context, stderr io.Writer) ([]byte, error) {
	if kf.newPassFile != "" {
		return passphraseFromFile(kf.newPassFile, stderr)
	}
	if p, ok := os.LookupEnv("CLOAKROOM_NEW_PASSPHRASE"); ok && p != "" {
		return []byte(p), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, errors.New("keyring passwd: no new passphrase: set CLOAKROOM_NEW_PASSPHRASE, give --new-passphrase-file FILE, or run on a terminal")
	}
	return askTwice(ctx, stderr)
}

// askTwice reads a new passphrase twice from the terminal.
func askTwice(ctx context.Context, stderr io.Writer) ([]byte, error) {
	p, err := readHidden(ctx, "new passphrase: ", stderr)
	if err != nil {
		return nil, err
	}
	again, err := readHidden(ctx, "the same again: ", stderr)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(p, again) {
		return nil, errors.New("keyring: the two passphrases differ")
	}
	return p, nil
}

// passphraseFromFile is FILE's first line (without its line ending; spaces
// are the passphrase's).
func passphraseFromFile(path string, stderr io.Writer) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "warning: passphrase file %s may be read by other users (mode %s): chmod 600 it\n", path, st.Mode().Perm())
	}
	line, err := bufio.NewReader(io.LimitReader(f, maxLinkFile)).ReadString('\n')
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("passphrase file %s: %w", path, err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return nil, fmt.Errorf("passphrase file %s: its first line is empty", path)
	}
	return []byte(line), nil
}

// readHidden reads a line from the terminal on stdin without echo. An
// interrupt (ctx) puts the terminal back as it was and gives up.
func readHidden(ctx context.Context, prompt string, stderr io.Writer) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	fmt.Fprint(stderr, prompt)
	type read struct {
		b   []byte
		err error
	}
	ch := make(chan read, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		ch <- read{b, err}
	}()
	select {
	case r := <-ch:
		fmt.Fprintln(stderr)
		if r.err != nil {
			return nil, fmt.Errorf("terminal: %w", r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		fmt.Fprintln(stderr)
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

// openKeyring loads the keyring (asking its passphrase).
func openKeyring(ctx context.Context, kf *keyringFlags, stderr io.Writer) (*keyring.Keyring, string, error) {
	path, err := kf.file()
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("no keyring at %s (cloakroom keyring add NAME LINK makes one)", path)
	}
	pass, err := kf.passphrase(ctx, path, false, stderr)
	if err != nil {
		return nil, "", err
	}
	defer clear(pass)
	k, err := keyring.Load(path, pass, func(w string) { fmt.Fprintln(stderr, "warning:", w) })
	if err != nil {
		return nil, "", err
	}
	return k, path, nil
}

// linkFromKeyring resolves key:NAME.
func linkFromKeyring(ctx context.Context, name string, kf *keyringFlags, stderr io.Writer) (string, error) {
	if err := keyring.ValidName(name); err != nil {
		return "", usagef("LINK key:NAME: %w", err)
	}
	k, path, err := openKeyring(ctx, kf, stderr)
	if err != nil {
		return "", err
	}
	link, err := k.Link(name)
	if err != nil {
		return "", fmt.Errorf("keyring %s: no room named %q (cloakroom keyring ls lists them)", path, name)
	}
	return link, nil
}

// keyringUpdate runs fn on the keyring under its lock and saves it; a
// missing keyring is made (its passphrase asked twice on a terminal).
// ask, if not nil, runs once the passphrase is known and before the
// (slow) derivation: whatever else must be asked is asked then.
func keyringUpdate(ctx context.Context, kf *keyringFlags, stderr io.Writer, ask func() error, fn func(*keyring.Keyring) error) (string, *keyring.Keyring, error) {
	path, err := kf.file()
	if err != nil {
		return "", nil, err
	}
	_, statErr := os.Stat(path)
	create := errors.Is(statErr, fs.ErrNotExist)
	pass, err := kf.passphrase(ctx, path, create, stderr)
	if err != nil {
		return "", nil, err
	}
	defer clear(pass)
	if ask != nil {
		if err := ask(); err != nil {
			return "", nil, err
		}
	}
	unlock, err := keyring.Lock(path)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	k, err := keyring.Load(path, pass, func(w string) { fmt.Fprintln(stderr, "warning:", w) })
	if errors.Is(err, fs.ErrNotExist) {
		k, err = keyring.New(pass, keyring.DefaultParams)
	}
	if err != nil {
		return "", nil, err
	}
	if err := fn(k); err != nil {
		return "", nil, err
	}
	if err := k.Save(path); err != nil {
		return "", nil, err
	}
	return path, k, nil
}

// keyringAdd keeps link (already resolved, checked) under name.
func keyringAdd(ctx context.Context, kf *keyringFlags, name, link string, replace bool, stderr io.Writer) error {
	if _, _, err := crypto.ParseInvite(link); err != nil {
		return usagef("keyring add: LINK is not a room link or mini code: %w", err)
	}
	path, k, err := keyringUpdate(ctx, kf, stderr, nil, func(k *keyring.Keyring) error {
		err := k.Add(name, link, replace)
		if errors.Is(err, keyring.ErrExists) {
			return fmt.Errorf("keyring: %q is already there (--force replaces it)", name)
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "kept %s in keyring %s (%d room(s)); use it as key:%s\n", name, path, k.Len(), name)
	return nil
}

func cmdKeyring(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("keyring", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, keyringUsage)
		fs.PrintDefaults()
	}
	var kf keyringFlags
	kf.register(fs)
	force := fs.Bool("force", false, "add: replace a room of the same name")
	fs.StringVar(&kf.newPassFile, "new-passphrase-file", "", "passwd: read the new passphrase from FILE's first line (default $CLOAKROOM_NEW_PASSPHRASE, else asked on the terminal)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usagef("keyring: want add, ls, rm or passwd")
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	switch sub {
	case "add":
		return keyringAddCmd(ctx, &kf, rest, *force, stdin, stderr)
	case "ls":
		if len(rest) != 0 {
			return usagef("keyring ls: unexpected argument %q", rest[0])
		}
		k, _, err := openKeyring(ctx, &kf, stderr)
		if err != nil {
			return err
		}
		for _, n := range k.Names() {
			fmt.Fprintln(stdout, n)
		}
		return nil
	case "rm":
		return keyringRmCmd(ctx, &kf, rest, stderr)
	case "passwd":
		return keyringPasswdCmd(ctx, &kf, rest, stderr)
	}
	fs.Usage()
	return usagef("keyring: unknown command %q (want add, ls, rm or passwd)", sub)
}

// keyringAddCmd is `keyring add NAME [LINK]`.
func keyringAddCmd(ctx context.Context, kf *keyringFlags, rest []string, force bool, stdin io.Reader, stderr io.Writer) error {
	if len(rest) < 1 || len(rest) > 2 {
		return usagef("keyring add: want NAME [LINK]")
	}
	name := rest[0]
	if err := keyring.ValidName(name); err != nil {
		return usagef("keyring add: %w", err)
	}
	var link string
	var err error
	if len(rest) == 2 {
		if strings.HasPrefix(rest[1], "key:") {
			return usagef("keyring add: LINK key:NAME is already in a keyring")
		}
		link, err = resolveLink(ctx, rest[1], kf, stderr)
	} else {
		link, err = linkFromInput(ctx, stdin, stderr)
	}
	if err != nil {
		return err
	}
	return keyringAdd(ctx, kf, name, link, force, stderr)
}

// keyringRmCmd is `keyring rm NAME`.
func keyringRmCmd(ctx context.Context, kf *keyringFlags, rest []string, stderr io.Writer) error {
	if len(rest) != 1 {
		return usagef("keyring rm: want NAME")
	}
	name := rest[0]
	path, k, err := keyringUpdate(ctx, kf, stderr, nil, func(k *keyring.Keyring) error {
		if err := k.Remove(name); err != nil {
			return fmt.Errorf("keyring: no room named %q", name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "removed %s from keyring %s (%d room(s) left)\n", name, path, k.Len())
	return nil
}

// keyringPasswdCmd is `keyring passwd`: the keyring sealed again under a
// new passphrase, a new salt and today's default KDF parameters.
func keyringPasswdCmd(ctx context.Context, kf *keyringFlags, rest []string, stderr io.Writer) error {
	if len(rest) != 0 {
		return usagef("keyring passwd: unexpected argument %q", rest[0])
	}
	path, err := kf.file()
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no keyring at %s", path)
	}
	var newPass []byte
	defer func() { clear(newPass) }()
	ask := func() (err error) {
		newPass, err = kf.newPassphrase(ctx, stderr)
		return err
	}
	path, _, err = keyringUpdate(ctx, kf, stderr, ask, func(k *keyring.Keyring) error {
		return k.Rekey(newPass, keyring.DefaultParams)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "keyring %s: new passphrase set\n", path)
	return nil
}

// linkFromInput reads the LINK of `keyring add NAME` from the terminal
// without echo, or else from stdin's first non-empty line.
func linkFromInput(ctx context.Context, stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && f == os.Stdin && term.IsTerminal(int(f.Fd())) {
		b, err := readHidden(ctx, "room link or mini code: ", stderr)
		return strings.TrimSpace(string(b)), err
	}
	sc := bufio.NewScanner(io.LimitReader(stdin, maxLinkFile))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("keyring add: stdin: %w", err)
	}
	return "", usagef("keyring add: no LINK given and none on stdin")
}
