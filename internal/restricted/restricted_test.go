package restricted

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobq-dev/jobq/internal/execute"
	"github.com/jobq-dev/jobq/internal/fence"
	"github.com/jobq-dev/jobq/internal/testbin"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// commandDir returns a restricted-commands directory holding the given
// scripts (name to body after "#!/bin/sh"), each mode 0755.
func commandDir(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), DirName)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for name, body := range scripts {
		writeScript(t, filepath.Join(dir, name), body, 0o755)
	}
	return dir
}

func writeScript(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestSuccess(t *testing.T) {
	contained(t, func(t *testing.T, cg execute.Cgroups) {
		dir := commandDir(t, map[string]string{
			// cat would wait for input if stdin were not /dev/null.
			"hello": `cat; echo "hello"; echo "to stderr" >&2; echo "$PATH"; pwd; echo "args=$#"`,
		})
		ok, out := Run(context.Background(), dir, "hello", Options{Cgroup: cg})
		want := "hello\nto stderr\n/usr/sbin:/usr/bin:/sbin:/bin\n/\nargs=0\n"
		if !ok || out != want {
			t.Fatalf("Run = %v, %q; want true, %q", ok, out, want)
		}
	})
}

// The command's environment is PATH alone (the shell adds its own PWD).
func TestEnvironment(t *testing.T) {
	contained(t, func(t *testing.T, cg execute.Cgroups) {
		t.Setenv("JOBQ_SECRET", "x")
		dir := commandDir(t, map[string]string{"env": `env`})
		ok, out := Run(context.Background(), dir, "env", Options{Cgroup: cg})
		if !ok {
			t.Fatalf("Run failed: %q", out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			name, _, _ := strings.Cut(line, "=")
			if name != "PATH" && name != "PWD" && name != "OLDPWD" && name != "SHLVL" && name != "_" {
				t.Errorf("unexpected environment variable %q", line)
			}
		}
	})
}

func TestFailure(t *testing.T) {
	contained(t, func(t *testing.T, cg execute.Cgroups) {
		dir := commandDir(t, map[string]string{
			"fail":      `echo "oops"; exit 3`,
			"silent":    `exit 1`,
			"noeol":     `printf 'partial'; exit 2`,
			"suicide":   `kill -TERM $$`,
			"noshebang": "",
		})
		if err := os.WriteFile(filepath.Join(dir, "noshebang"), []byte("echo hi\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{
			"fail":      "oops\n[exited with status 3]",
			"silent":    "[exited with status 1]",
			"noeol":     "partial\n[exited with status 2]",
			"suicide":   "[killed by signal 15 (terminated)]",
			"noshebang": "Restricted command 'noshebang' could not be started: exec format error",
		} {
			ok, out := Run(context.Background(), dir, name, Options{Cgroup: cg})
			if ok || out != want {
				t.Errorf("%s: Run = %v, %q; want false, %q", name, ok, out, want)
			}
		}
	})
}

func TestBadNames(t *testing.T) {
	dir := commandDir(t, map[string]string{"ok": `echo ok`})
	for _, tc := range []struct{ name, want string }{
		{"", "Restricted command '' is not allowed: the name is empty"},
		{"/bin/true", "Restricted command '/bin/true' is not allowed: it must be a bare command name, not a path"},
		{"../ok", "Restricted command '../ok' is not allowed: it must be a bare command name, not a path"},
		{"sub/ok", "Restricted command 'sub/ok' is not allowed: it must be a bare command name, not a path"},
		{"..", "Restricted command '..' is not allowed: the name must not start with '.'"},
		{".", "Restricted command '.' is not allowed: the name must not start with '.'"},
		{".hidden", "Restricted command '.hidden' is not allowed: the name must not start with '.'"},
		{"a..b", "Restricted command 'a..b' is not allowed: the name must not contain '..'"},
		{"ok ", "Restricted command 'ok ' is not allowed: the name may only contain letters, digits, '-', '_' and '.'"},
		{"ok;rm", "Restricted command 'ok;rm' is not allowed: the name may only contain letters, digits, '-', '_' and '.'"},
		{"$(ok)", "Restricted command '$(ok)' is not allowed: the name may only contain letters, digits, '-', '_' and '.'"},
		{"é", "Restricted command 'é' is not allowed: the name may only contain letters, digits, '-', '_' and '.'"},
		{"a\nb", `Restricted command "a\nb" is not allowed: the name may only contain letters, digits, '-', '_' and '.'`},
		{"it's", `Restricted command "it's" is not allowed: the name may only contain letters, digits, '-', '_' and '.'`},
		{"ok\x00", `Restricted command "ok\x00" is not allowed: the name may only contain letters, digits, '-', '_' and '.'`},
		{strings.Repeat("a", 256), "Restricted command '" + strings.Repeat("a", 256) + "' is not allowed: the name is longer than 255 bytes"},
	} {
		ok, out := Run(context.Background(), dir, tc.name, Options{})
		if ok || out != tc.want {
			t.Errorf("%q: Run = %v, %q; want false, %q", tc.name, ok, out, tc.want)
		}
		if err := CheckName(tc.name); err == nil || err.Error() != tc.want {
			t.Errorf("CheckName(%q) = %v", tc.name, err)
		}
	}
	for _, name := range []string{"ok", "a.b-c_D9", strings.Repeat("a", 255)} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
	}
}

func TestRefusedFiles(t *testing.T) {
	dir := commandDir(t, map[string]string{"target": `echo ran`})
	outside := filepath.Join(t.TempDir(), "outside")
	writeScript(t, outside, `echo ran`, 0o755)
	for _, l := range []struct{ name, target string }{{"inside-link", "target"}, {"outside-link", outside}} {
		if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	writeScript(t, filepath.Join(dir, "noexec"), `echo ran`, 0o644)
	writeScript(t, filepath.Join(dir, "othersonly"), `echo ran`, 0o601)
	writeScript(t, filepath.Join(dir, "groupwritable"), `echo ran`, 0o775)
	writeScript(t, filepath.Join(dir, "worldwritable"), `echo ran`, 0o757)
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"inside-link":   "Restricted command 'inside-link' is not allowed: " + dir + "/inside-link is a symbolic link",
		"outside-link":  "Restricted command 'outside-link' is not allowed: " + dir + "/outside-link is a symbolic link",
		"noexec":        "Restricted command 'noexec' is not allowed: " + dir + "/noexec is not executable by its owner",
		"othersonly":    "Restricted command 'othersonly' is not allowed: " + dir + "/othersonly is not executable by its owner",
		"groupwritable": "Restricted command 'groupwritable' is not allowed: " + dir + "/groupwritable is writable by its group or by others (mode 0775)",
		"worldwritable": "Restricted command 'worldwritable' is not allowed: " + dir + "/worldwritable is writable by its group or by others (mode 0757)",
		"subdir":        "Restricted command 'subdir' is not allowed: " + dir + "/subdir is not a regular file",
		"fifo":          "Restricted command 'fifo' is not allowed: " + dir + "/fifo is not a regular file",
		"missing":       "Restricted command 'missing' does not exist in " + dir,
	} {
		ok, out := Run(context.Background(), dir, name, Options{})
		if ok || out != want {
			t.Errorf("%s: Run = %v, %q; want false, %q", name, ok, out, want)
		}
	}
	if ok, out := Run(context.Background(), dir, "target", Options{}); !ok || out != "ran\n" {
		t.Errorf("target: Run = %v, %q", ok, out)
	}
}

func TestRefusedDirectory(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o775, 0o757} {
		dir := commandDir(t, map[string]string{"ok": `echo ran`})
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		want := "Restricted command 'ok' is not allowed: the directory " + dir + " is writable by its group or by others (mode " + octal(mode) + ")"
		if ok, out := Run(context.Background(), dir, "ok", Options{}); ok || out != want {
			t.Errorf("mode %04o: Run = %v, %q; want false, %q", mode, ok, out, want)
		}
	}
	// A symbolic link to a good directory is followed.
	dir := commandDir(t, map[string]string{"ok": `echo ran`})
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if ok, out := Run(context.Background(), link, "ok", Options{}); !ok || out != "ran\n" {
		t.Errorf("linked directory: Run = %v, %q", ok, out)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	file := filepath.Join(dir, "ok")
	for _, tc := range []struct{ dir, want string }{
		{missing, "Restricted command 'ok' does not exist: the directory " + missing + " does not exist"},
		{file, "Restricted command 'ok' is not allowed: " + file + " is not a directory"},
		{"", "Restricted command 'ok' cannot be run: this node has no restricted-commands directory"},
	} {
		if ok, out := Run(context.Background(), tc.dir, "ok", Options{}); ok || out != tc.want {
			t.Errorf("dir %q: Run = %v, %q; want false, %q", tc.dir, ok, out, tc.want)
		}
	}
}

func octal(m os.FileMode) string {
	const digits = "01234567"
	p := uint32(m.Perm())
	return string([]byte{'0', digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

// contained runs fn in both ways a command is contained: a cgroup of its
// own (jobqd as root: CI) and a process group (without a usable cgroup).
func contained(t *testing.T, fn func(t *testing.T, cg execute.Cgroups)) {
	t.Run("process-group", func(t *testing.T) { fn(t, execute.Cgroups{}) })
	t.Run("cgroup", func(t *testing.T) { fn(t, cgroups(t)) })
}

// cgroups is a cgroup v2 parent for the test's executions; without root
// or a usable cgroup v2 the test fails in CI and is skipped elsewhere.
func cgroups(t *testing.T) execute.Cgroups {
	t.Helper()
	cg := testbin.Cgroups(t, "jobq-restricted-test")
	t.Cleanup(func() {
		// Every execution has ended with everything it started: an
		// empty cgroup is kept for the next one, none holds a process.
		ents, _ := os.ReadDir(cg.Parent)
		for _, e := range ents {
			if e.IsDir() && execute.Populated(filepath.Join(cg.Parent, e.Name())) {
				t.Errorf("the execution cgroup %s still holds processes", e.Name())
			}
		}
	})
	return cg
}

// At the timeout everything the command started dies, the shell's child
// that holds the output pipe included.
func TestTimeoutKillsEverything(t *testing.T) {
	contained(t, func(t *testing.T, cg execute.Cgroups) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		dir := commandDir(t, map[string]string{"hang": `sleep 1000 & echo $! > ` + pidFile + `; echo started; wait`})
		ok, out := Run(context.Background(), dir, "hang", Options{Timeout: 500 * time.Millisecond, Cgroup: cg})
		want := "started\nRestricted command 'hang' timed out after 500ms and was killed"
		if ok || out != want {
			t.Fatalf("Run = %v, %q; want false, %q", ok, out, want)
		}
		testbin.Gone(t, testbin.ReadPid(t, pidFile), "the command's child")
	})
}

// What a command leaves running is killed when it ends.
func TestLeftoversKilled(t *testing.T) {
	contained(t, func(t *testing.T, cg execute.Cgroups) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		dir := commandDir(t, map[string]string{"bg": `sleep 1000 & echo $! > ` + pidFile + `; echo bye`})
		if ok, out := Run(context.Background(), dir, "bg", Options{Cgroup: cg}); !ok || out != "bye\n" {
			t.Fatalf("Run = %v, %q", ok, out)
		}
		testbin.Gone(t, testbin.ReadPid(t, pidFile), "what the command left running")
	})
}

// escaper is a command that starts a child in a session of its own
// (setsid: out of the command's process group), which writes its pid to
// pidFile and sleeps, keeping the output pipe open; the command says
// "started" first, waits for the pid file and sleeps too.
func escaper(t *testing.T, pidFile string) string {
	return commandDir(t, map[string]string{"escape": `echo started
setsid sh -c 'echo $$ > ` + pidFile + `.tmp; mv ` + pidFile + `.tmp ` + pidFile + `; exec sleep 1000' &
while [ ! -s ` + pidFile + ` ]; do sleep 0.01; done
sleep 1000`})
}

// In a process group alone, a child that calls setsid escapes: Run
// returns (its reading of the output ends at a deadline) but the child
// survives. This is what the cgroup is for (the tests below).
func TestSetsidEscapesProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ok, out := Run(context.Background(), escaper(t, pidFile), "escape", Options{Timeout: 300 * time.Millisecond})
	pid := testbin.ReadPid(t, pidFile)
	defer syscall.Kill(pid, syscall.SIGKILL)
	if want := "started\nRestricted command 'escape' timed out after 300ms and was killed"; ok || out != want {
		t.Fatalf("Run = %v, %q; want false, %q", ok, out, want)
	}
	if !testbin.Alive(pid) {
		t.Fatalf("the setsid child %d did not survive a process group's kill: the cgroup tests below prove nothing", pid)
	}
}

// In a cgroup, the setsid child dies at the timeout with the command.
func TestTimeoutKillsSetsidChild(t *testing.T) {
	cg := cgroups(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ok, out := Run(context.Background(), escaper(t, pidFile), "escape", Options{Timeout: 300 * time.Millisecond, Cgroup: cg})
	if want := "started\nRestricted command 'escape' timed out after 300ms and was killed"; ok || out != want {
		t.Fatalf("Run = %v, %q; want false, %q", ok, out, want)
	}
	testbin.Gone(t, testbin.ReadPid(t, pidFile), "the setsid child")
}

// The fence stopping a deposed master's executions (a node learns of a
// newer term) kills a restricted command with its setsid child, and the
// execution ends only once they are gone: the next master's work begins
// after it.
func TestFenceStopKillsSetsidChild(t *testing.T) {
	cg := cgroups(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	dir := escaper(t, pidFile)
	var f fence.Fence
	fctx, end, err := f.Begin(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		ok  bool
		out string
	}
	done := make(chan res, 1)
	go func() {
		defer end()
		ok, out := Run(fctx, dir, "escape", Options{Cgroup: cg})
		done <- res{ok, out}
	}()
	pid := testbin.ReadPid(t, pidFile)
	if !testbin.Alive(pid) {
		t.Fatalf("the setsid child %d does not run", pid)
	}
	if n := f.Observe(4); n != 1 {
		t.Fatalf("the fence stopped %d executions, want 1", n)
	}
	// The next master's execution waits for the stopped one to end.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, end4, err := f.Begin(ctx, 4)
	if err != nil {
		t.Fatalf("the next master's execution could not begin within 30s of the stop: %v", err)
	}
	end4()
	var r res
	select {
	case r = <-done:
	default:
		t.Fatal("an execution of the next master began while the stopped one still ran")
	}
	if want := "started\nRestricted command 'escape' was interrupted and killed"; r.ok || r.out != want {
		t.Fatalf("Run = %v, %q; want false, %q", r.ok, r.out, want)
	}
	testbin.Gone(t, pid, "the setsid child of a stopped execution")
}

func TestCancel(t *testing.T) {
	contained(t, func(t *testing.T, cg execute.Cgroups) {
		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		pidFile := filepath.Join(t.TempDir(), "pid")
		dir := commandDir(t, map[string]string{"hang": `echo started; sleep 1000 & echo $! > ` + pidFile + `; echo > ` + fifo + `; wait`})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type res struct {
			ok  bool
			out string
		}
		done := make(chan res)
		go func() {
			ok, out := Run(ctx, dir, "hang", Options{Cgroup: cg})
			done <- res{ok, out}
		}()
		// Opening the fifo waits until the command has opened it: it runs.
		b, err := os.ReadFile(fifo)
		if err != nil || string(b) != "\n" {
			t.Fatalf("fifo: %q %v", b, err)
		}
		cancel()
		r := <-done
		if want := "started\nRestricted command 'hang' was interrupted and killed"; r.ok || r.out != want {
			t.Fatalf("Run = %v, %q; want false, %q", r.ok, r.out, want)
		}
		testbin.Gone(t, testbin.ReadPid(t, pidFile), "the command's child")
		// Cancelled before it starts: not run at all.
		if ok, out := Run(ctx, dir, "hang", Options{Cgroup: cg}); ok || !strings.Contains(out, "was not run") {
			t.Fatalf("cancelled Run = %v, %q", ok, out)
		}
	})
}

func TestTruncation(t *testing.T) {
	contained(t, func(t *testing.T, cg execute.Cgroups) {
		dir := commandDir(t, map[string]string{
			// Far more than a pipe holds: the command must not block.
			"big": `head -c 300000 /dev/zero | tr '\0' a; echo done >&2`,
			// "é" is two bytes; a cut inside it drops the half.
			"utf8":  `printf 'aé'`,
			"exact": `printf 'abc'`,
		})
		ok, out := Run(context.Background(), dir, "big", Options{Cgroup: cg, MaxOutput: 1000})
		if want := strings.Repeat("a", 1000) + "\n" + TruncatedNote; !ok || out != want {
			t.Fatalf("big: Run = %v, %.40q... (%d bytes)", ok, out, len(out))
		}
		ok, out = Run(context.Background(), dir, "big", Options{Cgroup: cg})
		if want := strings.Repeat("a", 300000) + "done\n"; !ok || out != want {
			t.Fatalf("big, default limit: Run = %v, %d bytes", ok, len(out))
		}
		if ok, out := Run(context.Background(), dir, "utf8", Options{Cgroup: cg, MaxOutput: 2}); !ok || out != "a\n"+TruncatedNote {
			t.Errorf("utf8: Run = %v, %q", ok, out)
		}
		if ok, out := Run(context.Background(), dir, "exact", Options{Cgroup: cg, MaxOutput: 3}); !ok || out != "abc" {
			t.Errorf("exact: Run = %v, %q", ok, out)
		}
	})
}

// Concurrent calls all run (one at a time).
func TestConcurrent(t *testing.T) {
	dir := commandDir(t, map[string]string{"hi": `echo hi`})
	done := make(chan string)
	for range 8 {
		go func() {
			_, out := Run(context.Background(), dir, "hi", Options{})
			done <- out
		}()
	}
	for range 8 {
		if out := <-done; out != "hi\n" {
			t.Errorf("Run = %q", out)
		}
	}
}

func TestDir(t *testing.T) {
	if got := Dir("/var/lib/jobq"); got != "/var/lib/jobq/restricted-commands" {
		t.Fatal(got)
	}
}

func TestCheckProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("#!/bin/sh\n"), 0o755)
	if err := CheckProgram(good); err != nil {
		t.Fatalf("good program: %v", err)
	}
	if err := CheckProgram("/bin/true"); err != nil {
		t.Fatalf("/bin/true: %v", err)
	}
	writable := filepath.Join(dir, "writable")
	os.WriteFile(writable, []byte("#!/bin/sh\n"), 0o755)
	os.Chmod(writable, 0o775)
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755)
	os.Chown(other, 4242, 4242)
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink("/bin/true", link)
	for path, want := range map[string]string{
		writable:           "writable by its group or by others (mode 0775)",
		other:              "owned by uid 4242",
		noexec:             "not executable by its owner",
		link:               "symbolic link",
		"bin/true":         "absolute, clean path",
		"/bin/../bin/true": "absolute, clean path",
		dir + "/missing":   "does not exist",
		"/tmp":             "not a regular file",
	} {
		err := CheckProgram(path)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	// A near miss: mode 0755 owned by root passes; 0757 does not.
	os.Chmod(writable, 0o757)
	if err := CheckProgram(writable); err == nil {
		t.Error("a program writable by others passed")
	}
	// A program in a directory writable by others is refused.
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	prog := filepath.Join(open, "p")
	os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755)
	if err := CheckProgram(prog); err == nil || !strings.Contains(err.Error(), "its directory "+open) {
		t.Errorf("program in a world-writable directory: %v", err)
	}
}
