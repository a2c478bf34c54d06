package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runKeyringCLI runs cloakroom to its end with env added to an environment
// that has no CLOAKROOM_PASSPHRASE/CLOAKROOM_KEYRING of the caller's, and
// stdin not a terminal.
func runKeyringCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOAKROOM_PASSPHRASE=") && !strings.HasPrefix(kv, "CLOAKROOM_KEYRING=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("cloakroom %v did not end within a minute (waiting for input?)", args)
	}
	return out.String(), errb.String(), err
}

// TestCLIKeyring: a room kept in a keyring (its link read from a file) is
// joined by key:NAME with the passphrase from the environment: a file goes
// from send to recv, the secret is never in a command line, in `keyring
// ls`'s output or in the keyring file; a wrong passphrase is refused
// plainly and leaves the file as it was; without a passphrase and without
// a terminal the command fails at once rather than wait; passwd changes
// the passphrase.
//
// Checked to fail: with resolveLink's key: case removed, recv takes
// "key:room" for a mini code and exits before it is in the room.
func TestCLIKeyring(t *testing.T) {
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	secret := link[strings.Index(link, "#")+1:]
	dir := t.TempDir()
	linkFile := filepath.Join(dir, "room")
	if err := os.WriteFile(linkFile, []byte(link+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	krPath := filepath.Join(dir, "config", "cloakroom", "keyring")
	env := []string{"CLOAKROOM_KEYRING=" + krPath, "CLOAKROOM_PASSPHRASE=correct horse battery staple"}

	if _, stderr, err := runKeyringCLI(t, env, "keyring", "add", "room", "@"+linkFile); err != nil {
		t.Fatalf("keyring add: %v\n%s", err, stderr)
	}
	st, err := os.Stat(krPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode %s, want 0600", st.Mode().Perm())
	}
	sealed, _ := os.ReadFile(krPath)
	if bytes.Contains(sealed, []byte(secret)) || bytes.Contains(sealed, []byte("room")) {
		t.Fatal("the keyring file holds the secret or the name in clear")
	}
	stdout, stderr, err := runKeyringCLI(t, env, "keyring", "ls")
	if err != nil || stdout != "room\n" {
		t.Fatalf("keyring ls: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, secret) {
		t.Fatal("keyring ls printed the secret")
	}

	// recv stays in the room until send is done (with --count 1 it may
	// leave before the sender has its acknowledgement; under load the
	// sender then reports the copy not delivered — seen in
	// TestCLILinkNotInArgs too, and not this test's subject).
	out := t.TempDir()
	r := startEnv(t, env, "recv", "-o", out, "key:room")
	r.waitLine(t, regexp.MustCompile(`in the room`), 30*time.Second)
	src, want := randomFile(t, t.TempDir(), 256<<10)
	s := startEnv(t, env, "send", "key:room", src)
	if err := s.wait(t, time.Minute); err != nil {
		t.Fatalf("send key:room: %v", err)
	}
	r.waitLine(t, regexp.MustCompile(`random\.bin$`), 30*time.Second)
	if sha := fileSHA(t, filepath.Join(out, "random.bin")); sha != want {
		t.Fatalf("received SHA-256 %s, want %s", sha, want)
	}
	for _, p := range []*proc{r, s} {
		if args := strings.Join(p.cmd.Args, " "); strings.Contains(args, "#") || strings.Contains(args, secret) {
			t.Errorf("the command line holds the link: %v", p.cmd.Args)
		}
		if strings.Contains(strings.Join(p.output(), "\n"), secret) {
			t.Errorf("%v printed the secret", p.cmd.Args[:2])
		}
	}

	wrong := []string{"CLOAKROOM_KEYRING=" + krPath, "CLOAKROOM_PASSPHRASE=correct horse battery stapler"}
	if _, stderr, err := runKeyringCLI(t, wrong, "recv", "-o", out, "key:room"); err == nil || !strings.Contains(stderr, "wrong passphrase or damaged keyring") {
		t.Fatalf("recv with a wrong passphrase: %v, stderr %q", err, stderr)
	}
	if after, _ := os.ReadFile(krPath); !bytes.Equal(after, sealed) {
		t.Fatal("a wrong passphrase changed the keyring file")
	}
	noPass := []string{"CLOAKROOM_KEYRING=" + krPath}
	if _, stderr, err := runKeyringCLI(t, noPass, "keyring", "ls"); err == nil || !strings.Contains(stderr, "no passphrase") {
		t.Fatalf("keyring ls without a passphrase nor a terminal: %v, stderr %q", err, stderr)
	}
	// passwd: the old passphrase opens it no more, the new one does.
	if _, stderr, err := runKeyringCLI(t, env, "keyring", "passwd"); err == nil || !strings.Contains(stderr, "no new passphrase") {
		t.Fatalf("keyring passwd without a new passphrase nor a terminal: %v, stderr %q", err, stderr)
	}
	if after, _ := os.ReadFile(krPath); !bytes.Equal(after, sealed) {
		t.Fatal("a failed passwd changed the keyring file")
	}
	if _, stderr, err := runKeyringCLI(t, append(env, "CLOAKROOM_NEW_PASSPHRASE=tr0ub4dor&3 is better"), "keyring", "passwd"); err != nil {
		t.Fatalf("keyring passwd: %v\n%s", err, stderr)
	}
	if _, stderr, err := runKeyringCLI(t, env, "keyring", "ls"); err == nil || !strings.Contains(stderr, "wrong passphrase") {
		t.Fatalf("the old passphrase after passwd: %v, stderr %q", err, stderr)
	}
	env = []string{"CLOAKROOM_KEYRING=" + krPath, "CLOAKROOM_PASSPHRASE=tr0ub4dor&3 is better"}
	if stdout, stderr, err := runKeyringCLI(t, env, "keyring", "ls"); err != nil || stdout != "room\n" {
		t.Fatalf("keyring ls with the new passphrase: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}
