package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// crocScript runs croc's own relay, a sender and a receiver of $2 into $3
// (croc is $1), and prints the sender's start and the receiver's end
// (seconds since the epoch). It runs under `unshare -n`: a network
// namespace of its own with only loopback, so croc's start-up look-ups of
// its public relays go nowhere and its ports meet no other run's. Settings
// as in FACTS.md: no compression (our files are random), no local relay,
// the code in CROC_SECRET, the receiver started once the sender shows it.
const crocScript = `set -e
croc=$1 src=$2 out=$3
ip link set lo up
export CROC_SECRET=cloakroom-bench-$$
cd "$out"
mkdir -p got
"$croc" relay --host 127.0.0.1 --ports 9009,9010,9011,9012,9013 >relay.log 2>&1 &
relay=$!
trap 'kill $relay 2>/dev/null || true' EXIT
i=0
until grep -q 9013 relay.log 2>/dev/null; do i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.05; done
flags="--relay 127.0.0.1:9009 --relay6 [::1]:9009 --no-compress"
t0=$(date +%s.%N)
"$croc" $flags send --no-local "$src" >send.log 2>&1 &
send=$!
i=0
until grep -q "Code is" send.log 2>/dev/null; do i=$((i+1)); [ $i -lt 2000 ] || exit 4; sleep 0.01; done
"$croc" $flags --yes --overwrite --out got >recv.log 2>&1
t1=$(date +%s.%N)
wait $send
echo "$t0 $t1"
`

// findCroc returns the croc to run: path, or croc in PATH when path is
// empty ("" when there is none, or path is "-").
func findCroc(path string) string {
	switch path {
	case "-":
		return ""
	case "":
		p, err := exec.LookPath("croc")
		if err != nil {
			return ""
		}
		return p
	}
	return path
}

// timeCroc sends src through croc's relay (crocScript) and returns the
// time from the sender's start to the received file, checked by size.
func timeCroc(ctx context.Context, croc, src, outDir string) (time.Duration, error) {
	abs, err := exec.LookPath(croc)
	if err == nil {
		abs, err = filepath.Abs(abs)
	}
	if err != nil {
		return 0, fmt.Errorf("bench: croc: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(outDir)
	srcAbs, err := filepath.Abs(src)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "unshare", "-n", "sh", "-c", crocScript, "sh", abs, srcAbs, outDir)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s (logs in %s were removed)", err, strings.TrimSpace(string(ee.Stderr)), outDir)
		}
		return 0, fmt.Errorf("bench: croc (unshare -n needs root; exit 3: its relay did not start, 4: its sender showed no code): %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, fmt.Errorf("bench: croc: unexpected output %q", out)
	}
	t0, err0 := strconv.ParseFloat(f[0], 64)
	t1, err1 := strconv.ParseFloat(f[1], 64)
	if err := errors.Join(err0, err1); err != nil {
		return 0, fmt.Errorf("bench: croc: %w", err)
	}
	st, err := os.Stat(filepath.Join(outDir, "got", filepath.Base(src)))
	if err != nil {
		return 0, fmt.Errorf("bench: croc received nothing: %w", err)
	}
	want, err := os.Stat(src)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	if st.Size() != want.Size() {
		return 0, fmt.Errorf("bench: croc received %d bytes of %d", st.Size(), want.Size())
	}
	return time.Duration((t1 - t0) * float64(time.Second)), nil
}
