package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cloakroom/internal/keyring"
)

func TestResolveLink(t *testing.T) {
	dir := t.TempDir()
	const link = "http://127.0.0.1:8080/#s49Vux9hnj2nGryvm1BGfQ"
	private := filepath.Join(dir, "room")
	if err := os.WriteFile(private, []byte("\n  "+link+"  \nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, []byte(link+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(shared, 0o644) // whatever the umask
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A keyring with cheap KDF parameters (the format is the default's).
	kr, err := keyring.New([]byte("a test passphrase"), keyring.Params{LogN: 10, R: 8, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Add("work", link, false); err != nil {
		t.Fatal(err)
	}
	krPath := filepath.Join(dir, "keyring")
	if err := kr.Save(krPath); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLOAKROOM_KEYRING", krPath)
	t.Setenv("CLOAKROOM_PASSPHRASE", "a test passphrase")
	t.Setenv("ROOM_LINK_TEST", " "+link+"\n")
	t.Setenv("ROOM_LINK_EMPTY", "")
	for _, tc := range []struct {
		arg, want, warn, err string
	}{
		{arg: link, want: link},
		{arg: "@" + private, want: link},
		{arg: "@" + shared, want: link, warn: "may be read by other users"},
		{arg: "env:ROOM_LINK_TEST", want: link},
		{arg: "@" + empty, err: "no link"},
		{arg: "@" + filepath.Join(dir, "missing"), err: "no such file"},
		{arg: "@", err: "no file named"},
		{arg: "env:ROOM_LINK_EMPTY", err: "not set or empty"},
		{arg: "env:", err: "not set or empty"},
		{arg: "key:work", want: link},
		{arg: "key:nope", err: `no room named "nope"`},
		{arg: "key:", err: "room name"},
		{arg: "key:../x", err: "room name"},
	} {
		var stderr bytes.Buffer
		got, err := resolveLink(context.Background(), tc.arg, nil, &stderr)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("resolveLink(%q) = %q, %v; want an error with %q", tc.arg, got, err, tc.err)
			} else if strings.Contains(err.Error(), "s49Vux") {
				t.Errorf("resolveLink(%q): the error quotes the secret: %v", tc.arg, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("resolveLink(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		case tc.warn == "" && stderr.Len() > 0, tc.warn != "" && !strings.Contains(stderr.String(), tc.warn):
			t.Errorf("resolveLink(%q) warned %q, want %q", tc.arg, stderr.String(), tc.warn)
		}
	}
	// The passphrase: --passphrase-file before the environment; a wrong
	// one is refused plainly; an empty CLOAKROOM_PASSPHRASE is an error.
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("a test passphrase\r\nnext line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLOAKROOM_PASSPHRASE", "not the passphrase")
	var stderr bytes.Buffer
	if got, err := resolveLink(context.Background(), "key:work", &keyringFlags{passFile: passFile}, &stderr); err != nil || got != link {
		t.Errorf("key:work with --passphrase-file: %q, %v", got, err)
	}
	if _, err := resolveLink(context.Background(), "key:work", nil, &stderr); err == nil || !strings.Contains(err.Error(), "wrong passphrase or damaged keyring") {
		t.Errorf("key:work with a wrong passphrase: %v", err)
	}
	t.Setenv("CLOAKROOM_PASSPHRASE", "")
	if _, err := resolveLink(context.Background(), "key:work", nil, &stderr); err == nil || !strings.Contains(err.Error(), "CLOAKROOM_PASSPHRASE is empty") {
		t.Errorf("key:work with an empty CLOAKROOM_PASSPHRASE: %v", err)
	}
	t.Setenv("CLOAKROOM_KEYRING", filepath.Join(dir, "missing"))
	if _, err := resolveLink(context.Background(), "key:work", nil, &stderr); err == nil || !strings.Contains(err.Error(), "no keyring at") {
		t.Errorf("key:work without a keyring: %v", err)
	}
}

// TestCLILinkNotInArgs: a member joins with the link read from a file or
// from the environment, so the room's secret is never in its command line.
func TestCLILinkNotInArgs(t *testing.T) {
	_, url := startServer(t)
	link, _ := newRoom(t, url)
	file := filepath.Join(t.TempDir(), "room")
	if err := os.WriteFile(file, []byte(link+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := start(t, "recv", "-o", dir, "--count", "1", "@"+file)
	r.waitLine(t, regexp.MustCompile(`in the room`), 20*time.Second)
	src, want := randomFile(t, t.TempDir(), 1<<20)
	s := startEnv(t, []string{"CLOAKROOM_LINK=" + link}, "send", "env:CLOAKROOM_LINK", src)
	if err := s.wait(t, time.Minute); err != nil {
		t.Fatalf("send with env:CLOAKROOM_LINK: %v", err)
	}
	if err := r.wait(t, time.Minute); err != nil {
		t.Fatalf("recv with @FILE: %v", err)
	}
	for _, p := range []*proc{r, s} {
		if strings.Contains(strings.Join(p.cmd.Args, " "), "#") {
			t.Errorf("the command line holds the link: %v", p.cmd.Args)
		}
	}
	if sha := fileSHA(t, filepath.Join(dir, "random.bin")); sha != want {
		t.Fatalf("received SHA-256 %s, want %s", sha, want)
	}
}

// startEnv starts cloakroom with extra environment variables.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	p, _ := startCmd(t, cmd, false)
	return p
}

// TestKeyringCommand runs `keyring add|ls|rm` in process on a keyring with
// cheap KDF parameters: the link from stdin, names checked, an existing
// name kept unless --force, nothing printed holds the secret; new --save.
func TestKeyringCommand(t *testing.T) {
	const link = "http://127.0.0.1:8080/#s49Vux9hnj2nGryvm1BGfQ"
	path := filepath.Join(t.TempDir(), "keyring")
	kr, err := keyring.New([]byte("a test passphrase"), keyring.Params{LogN: 10, R: 8, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Save(path); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLOAKROOM_KEYRING", path)
	t.Setenv("CLOAKROOM_PASSPHRASE", "a test passphrase")
	var all bytes.Buffer
	cli := func(stdin string, args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"keyring"}, args...), strings.NewReader(stdin), &stdout, &stderr)
		all.WriteString(stdout.String() + stderr.String())
		if err != nil {
			all.WriteString(err.Error())
		}
		return stdout.String(), err
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		err   string
	}{
		{"\n" + link + "\n", []string{"add", "work"}, ""},
		{link, []string{"add", "work"}, "already there"},
		{"", []string{"add", "work", "http://127.0.0.1:8080/#AAAAux9hnj2nGryvm1BGfQ", "--force"}, ""},
		{"", []string{"add", "home", "key:work"}, "already in a keyring"},
		{"", []string{"add", "a/b", link}, "room name"},
		{"", []string{"add", "home", "not-a-link"}, "not a room link"},
		{"\n\n", []string{"add", "home"}, "none on stdin"},
		{"", []string{"rm", "nope"}, `no room named "nope"`},
		{"", []string{"frob"}, "unknown command"},
	} {
		if _, err := cli(tc.stdin, tc.args...); tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("keyring %v: %v, want %q", tc.args, err, tc.err)
		}
	}
	if out, err := cli("", "ls"); err != nil || out != "work\n" {
		t.Fatalf("keyring ls: %q, %v", out, err)
	}
	if got, err := resolveLink(context.Background(), "key:work", nil, io.Discard); err != nil || !strings.HasSuffix(got, "#AAAAux9hnj2nGryvm1BGfQ") {
		t.Fatalf("key:work after --force: %q, %v", got, err)
	}
	if _, err := cli("", "rm", "work"); err != nil {
		t.Fatal(err)
	}
	if out, err := cli("", "ls"); err != nil || out != "" {
		t.Fatalf("keyring ls after rm: %q, %v", out, err)
	}
	// new --save NAME keeps the room it prints.
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"new", "--server", "http://127.0.0.1:1", "--no-qr", "--save", "fresh"}, nil, &stdout, io.Discard); err != nil {
		t.Fatalf("new --save: %v", err)
	}
	if got, err := resolveLink(context.Background(), "key:fresh", nil, io.Discard); err != nil || got != strings.SplitN(stdout.String(), "\n", 2)[0] {
		t.Fatalf("key:fresh = %q, %v; new printed %q", got, err, stdout.String())
	}
	if err := run(context.Background(), []string{"new", "--server", "http://127.0.0.1:1", "--no-qr", "--save", "../x"}, nil, io.Discard, io.Discard); err == nil {
		t.Fatal("new --save ../x accepted")
	}
	if strings.Contains(all.String(), "s49Vux") || strings.Contains(all.String(), "AAAAux") {
		t.Fatalf("a secret was printed: %q", all.String())
	}
}
