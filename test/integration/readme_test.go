package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tourStep is one command of the README's tour and what its comment
// promises.
type tourStep struct {
	cmd string
	// refused: the command must fail (non-zero exit); want: text its
	// output must hold ("prints "X"", "refused: "X"").
	refused bool
	want    string
}

var tourComment = regexp.MustCompile(`^(prints|refused:) "([^"]*)"`)

// readmeTour returns the commands of the README's section title ("A
// five-minute tour"), in order: every line of its sh blocks, the comment
// after two spaces and "#" split off.
func readmeTour(t *testing.T, readme, title string) []tourStep {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n## "+title+"\n")
	if !ok {
		t.Fatalf(`README.md has no section "## %s"`, title)
	}
	section, _, _ := strings.Cut(rest, "\n## ")
	var steps []tourStep
	blocks := strings.Split(section, "```sh\n")
	for _, b := range blocks[1:] {
		code, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatal("an sh block of the tour is not closed")
		}
		for _, line := range strings.Split(code, "\n") {
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			s := tourStep{cmd: line}
			if i := strings.Index(line, "  #"); i >= 0 {
				s.cmd = strings.TrimSpace(line[:i])
				comment := strings.TrimSpace(line[i+3:])
				if m := tourComment.FindStringSubmatch(comment); m != nil {
					s.refused, s.want = m[1] == "refused:", m[2]
				}
			}
			steps = append(steps, s)
		}
	}
	// So that a broken parse cannot pass: every section run has more.
	if len(steps) < 5 {
		t.Fatalf("the README's %q has only %d commands", title, len(steps))
	}
	return steps
}

// shQuote quotes s for bash.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tourScript is a bash script that runs the tour's commands verbatim, one
// after the other in one shell (so that exports hold), checks what their
// comments promise, waits for a backgrounded jobqd to log "jobqd ready"
// (with a deadline, and saying so when it does not), and at the end stops
// it with SIGTERM as the README says ("kill %1").
func tourScript(steps []tourStep) string {
	var b strings.Builder
	b.WriteString(`set -u
fail() { echo "TOUR FAILED: $*"; exit 1; }
step() { # refused(0|1) want cmd
  echo "+ $3"
  eval "$3" >/tmp/tour.out 2>&1
  local rc=$?
  cat /tmp/tour.out
  if [ "$1" = 1 ]; then
    [ $rc -ne 0 ] || fail "'$3' should be refused but exited 0"
  else
    [ $rc -eq 0 ] || fail "'$3' exited $rc"
  fi
  if [ -n "$2" ]; then grep -qF -- "$2" /tmp/tour.out || fail "'$3' did not print '$2'"; fi
}
background() { # n cmd: the n-th program started in the background (%n)
  echo "+ $2"
  local log=/tmp/tour-bg-$1.log
  eval "$2" >$log 2>&1
  local pid=$!
  # Ready when it logs "jobqd ready" (as the README says): a blocking
  # read of its log, which ends when the process does, with a deadline.
  timeout 120 grep -q -m1 'jobqd ready' <(tail -n +1 -F --pid=$pid $log 2>/dev/null) ||
    { cat $log; fail "'$2' did not log 'jobqd ready' (it exited, or 120 s went by)"; }
}
`)
	bg := 0
	for _, s := range steps {
		if strings.HasSuffix(s.cmd, "&") {
			bg++
			fmt.Fprintf(&b, "background %d %s\n", bg, shQuote(s.cmd))
			continue
		}
		refused := "0"
		if s.refused {
			refused = "1"
		}
		fmt.Fprintf(&b, "step %s %s %s\n", refused, shQuote(s.want), shQuote(s.cmd))
	}
	b.WriteString(`echo "+ kill %1"
kill %1 || fail "no jobqd to stop"
wait %1; rc=$?
[ $rc -eq 0 ] || { cat /tmp/tour-bg-1.log; fail "jobqd exited $rc on SIGTERM"; }
grep -q 'jobqd stopped' /tmp/tour-bg-1.log || { cat /tmp/tour-bg-1.log; fail "jobqd did not log 'jobqd stopped'"; }
echo "TOUR OK"
`)
	return b.String()
}

// TestReadmeTour runs the README's tour verbatim, as a new user would: in
// a fresh copy of the repository's files, with an empty HOME and no
// $JOBQ_SOCKET, building the programs with the README's own command. It
// runs in private mount, network and PID namespaces (as root), so that
// the tour's /tmp/jobq is a tmpfs of its own, its default ports are free
// whatever runs on the machine, and nothing it starts outlives it.
func TestReadmeTour(t *testing.T) { runReadmeSection(t, "A five-minute tour") }

// TestReadmeOwnOperations runs the README's "Your own operations" as
// TestReadmeTour runs the tour: two nodes, a declared opcode on both.
func TestReadmeOwnOperations(t *testing.T) { runReadmeSection(t, "Your own operations") }

// TestReadmeOwnOpcodesInGo runs the README's "Your own opcodes in Go":
// examples/embed built and run in place of jobqd, its opcode submitted.
func TestReadmeOwnOpcodesInGo(t *testing.T) { runReadmeSection(t, "Your own opcodes in Go") }

func runReadmeSection(t *testing.T, title string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tour runs in private namespaces (its /tmp/jobq and default ports must not touch the machine's)")
	}
	for _, prog := range []string{"unshare", "ip", "mount", "git", "go", "timeout", "tail"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("needs %s: %v", prog, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := readmeTour(t, string(readme), title)

	// A fresh tree: the repository's files as git lists them (the working
	// copy's, so that the README under test is this one), nothing built.
	clone := filepath.Join(t.TempDir(), "jobq")
	files, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		src := filepath.Join(root, f)
		b, err := os.ReadFile(src)
		if os.IsNotExist(err) {
			continue // deleted in the working copy
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(clone, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(clone, ".tour.sh"), []byte(tourScript(steps)), 0o644); err != nil {
		t.Fatal(err)
	}
	goEnv := func(k string) string {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		return strings.TrimSpace(string(out))
	}
	// Inside: loopback up, the fresh tree at /mnt (a bind mount), then a
	// tmpfs over /tmp (the tour's /tmp/jobq, and HOME).
	inner := `set -e
ip link set lo up
mount --bind "$CLONE" /mnt
mount -t tmpfs tmpfs /tmp
mkdir /tmp/home
cd /mnt
exec bash .tour.sh`
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--net", "--pid", "--kill-child", "--", "bash", "-c", inner)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=/tmp/home", // a clean HOME
		"CLONE=" + clone,
		// The module and build caches of this machine (the namespace has
		// no network to fetch modules or the toolchain with).
		"GOMODCACHE=" + goEnv("GOMODCACHE"),
		"GOCACHE=" + goEnv("GOCACHE"),
		"GOPROXY=off",
		"GOTOOLCHAIN=local", // the README's export chooses the version
		"LANG=C.UTF-8",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the tour did not end within 15 minutes:\n%s", out.String())
	}
	if err != nil || !strings.Contains(out.String(), "\nTOUR OK\n") {
		t.Fatalf("the README's tour failed (%v):\n%s", err, out.String())
	}
	t.Logf("the README's %q, %d commands:\n%s", title, len(steps), out.String())
}
