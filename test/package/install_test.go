package pkgtest

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const (
	confFile = "/etc/jobq/jobqd.conf"
	dataDir  = "/var/lib/jobq"
)

// requireInstallable skips unless this machine can install the package for
// the test and remove it afterwards without touching anything it had.
func requireInstallable(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the install test needs root (dpkg -i, users, groups); run as root to include it")
	}
	if noSandbox != "" || os.Getenv(sandboxEnv) != "inside" {
		t.Skipf("the install test runs only in a throw-away root, so that it never changes this machine (%s)", noSandbox)
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query", "setpriv", "useradd", "userdel", "groupdel", "go", "git", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the install test needs %s, not found here", tool)
		}
	}
	if o := run(t, nil, "dpkg-query", "-W", "-f=${db:Status-Status}", "jobq"); o.code == 0 && o.stdout != "not-installed" {
		t.Skipf("a jobq package is already on this machine (%s): the test will not replace it; dpkg -P jobq to run it", o.stdout)
	}
	if _, err := os.Stat(confFile); err == nil {
		t.Skipf("%s exists without the package: the test will not replace it", confFile)
	}
}

// userIn creates a throwaway system user, a member of groups, removed at
// the end of the test.
func userIn(t *testing.T, name string, groups ...string) *user.User {
	t.Helper()
	args := []string{"--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group"}
	if len(groups) > 0 {
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	must(t, nil, "useradd", append(args, name)...)
	t.Cleanup(func() { run(t, nil, "userdel", name) })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// as runs a command as u, with u's groups, in a small fixed environment.
func as(t *testing.T, u *user.User, name string, args ...string) output {
	t.Helper()
	full := append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--", name}, args...)
	return run(t, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"}, "setpriv", full...)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestPackageInstallUseRemove builds the package from this checkout,
// installs it, checks what it installed (programs, versions, unit, man
// pages, completion, group, data directory), runs the installed jobqd with
// the packaged configuration on a private data directory, submits a job as
// a member of group jobq and is refused as a non-member, then removes
// (data kept) and purges (configuration removed, data kept unless
// confirmed) the package.
func TestPackageInstallUseRemove(t *testing.T) {
	requireInstallable(t)
	root := repoRoot(t)
	env := append(os.Environ(), "OUT_DIR="+t.TempDir(), "DEBIAN_FRONTEND=noninteractive")
	if !exists(filepath.Join(root, ".git")) {
		env = append(env, "VERSION=0.0~test")
	}
	debOut := run(t, env, filepath.Join(root, "packaging", "build-deb.sh"))
	if debOut.code != 0 {
		t.Fatalf("packaging/build-deb.sh: %s", debOut)
	}
	lines := strings.Split(strings.TrimSpace(debOut.stdout), "\n")
	deb := lines[len(lines)-1]
	version := strings.TrimSpace(must(t, nil, "dpkg-deb", "-f", deb, "Version"))
	if rec := must(t, nil, "dpkg-deb", "-f", deb, "Recommends"); !strings.Contains(rec, "bash-completion") {
		t.Errorf("the package does not recommend bash-completion: %q", rec)
	}
	t.Logf("built %s", deb)

	// What the machine had, to leave it so.
	_, groupErr := user.LookupGroup("jobq")
	hadGroup := groupErr == nil
	hadDataDir := exists(dataDir)
	t.Cleanup(func() {
		if o := run(t, nil, "dpkg-query", "-W", "-f=${db:Status-Status}", "jobq"); o.code == 0 && o.stdout != "not-installed" {
			run(t, nil, "dpkg", "--purge", "jobq")
		}
		if !hadGroup {
			run(t, nil, "groupdel", "jobq")
		}
		if !hadDataDir {
			os.RemoveAll(dataDir)
		}
	})

	must(t, nil, "dpkg", "-i", deb)

	// Files, group, data directory.
	for _, p := range []string{"/usr/sbin/jobqd", "/usr/bin/jobq", "/lib/systemd/system/jobqd.service", confFile,
		"/usr/share/man/man8/jobqd.8.gz", "/usr/share/man/man8/jobq.8.gz",
		"/usr/share/bash-completion/completions/jobq", "/usr/share/bash-completion/completions/jobqd",
		"/usr/share/zsh/vendor-completions/_jobq", "/usr/share/zsh/vendor-completions/_jobqd",
		"/usr/share/doc/jobq/operations.md", "/usr/share/doc/jobq/copyright"} {
		if !exists(p) {
			t.Errorf("the package did not install %s", p)
		}
	}
	if conffiles := must(t, nil, "dpkg-query", "-W", "-f=${Conffiles}", "jobq"); !strings.Contains(conffiles, confFile) {
		t.Errorf("%s is not a conffile: %q", confFile, conffiles)
	}
	group, err := user.LookupGroup("jobq")
	if err != nil {
		t.Fatalf("no jobq group after install: %v", err)
	}
	gid, _ := strconv.Atoi(group.Gid)
	if !hadDataDir {
		fi, err := os.Stat(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o750 || st.Uid != 0 || int(st.Gid) != gid {
			t.Errorf("%s: mode %v uid %d gid %d, want 0750 root:jobq", dataDir, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}

	// Versions: both programs say the package's version.
	for prog, args := range map[string][]string{"/usr/sbin/jobqd": {"--version"}, "/usr/bin/jobq": {"version"}} {
		out := must(t, nil, prog, args...)
		if want := filepath.Base(prog) + " " + version + " (commit "; !strings.HasPrefix(out, want) || !strings.HasSuffix(out, ", go1.27.3)\n") {
			t.Errorf("%s %s: %q, want %s... go1.27.3)", prog, args[0], out, want)
		}
	}

	// The unit.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if o := run(t, nil, "systemd-analyze", "verify", "/lib/systemd/system/jobqd.service"); o.code != 0 || o.stdout+o.stderr != "" {
			t.Errorf("systemd-analyze verify jobqd.service: %s", o)
		}
	} else {
		t.Log("systemd-analyze is not installed: the unit is not verified")
	}

	// Man pages: every page renders without a warning.
	if _, err := exec.LookPath("man"); err == nil {
		n := 0
		for _, f := range strings.Fields(must(t, nil, "dpkg-query", "-L", "jobq")) {
			if !strings.HasPrefix(f, "/usr/share/man/man8/") || !strings.HasSuffix(f, ".8.gz") {
				continue
			}
			n++
			o := run(t, []string{"PATH=/usr/bin:/bin", "MANWIDTH=80", "LANG=C.UTF-8"}, "man", "-l", f)
			name := strings.TrimSuffix(filepath.Base(f), ".8.gz")
			// A long NAME line is justified: "jobq-x  -  Print  a ...".
			nameLine := regexp.MustCompile(regexp.QuoteMeta(name) + `\s+-\s`)
			if o.code != 0 || o.stderr != "" || !strings.Contains(o.stdout, "NAME") || !nameLine.MatchString(o.stdout) {
				t.Errorf("man -l %s: %s", f, o)
			}
			if name == "jobqd" && !strings.Contains(o.stdout, "--check-config") {
				t.Errorf("jobqd(8) does not describe --check-config:\n%s", o.stdout)
			}
			// One jobq(8) with every command, as gnt-job(8).
			if name == "jobq" && (!strings.Contains(o.stdout, "COMMANDS") || !strings.Contains(o.stdout, "QUEUE DRAIN") || !strings.Contains(o.stdout, "DEBUG DELAY")) {
				t.Errorf("jobq(8) does not describe every command:\n%s", o.stdout)
			}
		}
		if n != 2 {
			t.Errorf("%d man pages installed, want jobq(8) and jobqd(8)", n)
		}
	} else {
		t.Log("man is not installed: the man pages are not rendered")
	}

	// Completion: the bash scripts load and register; jobq completes.
	for _, prog := range []string{"jobq", "jobqd"} {
		o := run(t, nil, "bash", "-c", "source /usr/share/bash-completion/completions/"+prog+" && complete -p "+prog)
		if o.code != 0 || !strings.Contains(o.stdout, "complete") || !strings.HasSuffix(strings.TrimSpace(o.stdout), " "+prog) {
			t.Errorf("bash completion of %s: %s", prog, o)
		}
		if b, err := os.ReadFile("/usr/share/zsh/vendor-completions/_" + prog); err != nil || !strings.HasPrefix(string(b), "#compdef "+prog) {
			t.Errorf("zsh completion of %s: %v %.40q", prog, err, b)
		}
	}
	if out := must(t, nil, "/usr/bin/jobq", "__complete", "qu"); !strings.Contains(out, "queue") {
		t.Errorf("jobq __complete qu: %q", out)
	}

	// The packaged configuration is valid.
	check := must(t, nil, "/usr/sbin/jobqd", "--config", confFile, "--check-config")
	for _, want := range []string{"data-dir          = /var/lib/jobq   # " + confFile + ":", "socket-group      = jobq   # " + confFile + ":",
		"rapi-require-auth = true   # " + confFile + ":"} {
		if !strings.Contains(check, want) {
			t.Errorf("--check-config lacks %q:\n%s", want, check)
		}
	}

	// Reinstalling (dpkg's upgrade path) keeps a local change to the
	// configuration.
	f, err := os.OpenFile(confFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# local change\n")
	f.Close()
	must(t, nil, "dpkg", "-i", deb)
	if b, _ := os.ReadFile(confFile); !strings.HasSuffix(string(b), "# local change\n") {
		t.Errorf("reinstalling lost the local change to %s", confFile)
	}

	// Run the installed jobqd with the packaged configuration, on a private
	// data directory that others may enter (as /var/lib/jobq's parent).
	base, err := os.MkdirTemp("", "jobq-pkgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "data")
	d := startDaemon(t, "/usr/sbin/jobqd", "--config", confFile, "--data-dir", dir, "--rpc-addr", "127.0.0.1:0", "--rapi-addr", "off", "--node-name", "pkgtest")
	sock := filepath.Join(dir, "socket", "jobq-query")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || int(st.Gid) != gid {
		t.Errorf("socket: mode %v gid %d, want 0660 group jobq (%d)", fi.Mode().Perm(), st.Gid, gid)
	}

	member := userIn(t, "jqpkg-m"+strconv.Itoa(os.Getpid()%100000), "jobq")
	other := userIn(t, "jqpkg-o"+strconv.Itoa(os.Getpid()%100000))
	if o := as(t, member, "/usr/bin/jobq", "--data-dir", dir, "debug", "delay", "0.01"); o.code != 0 {
		t.Errorf("jobq debug delay as a member of jobq: %s", o)
	}
	if o := as(t, member, "/usr/bin/jobq", "--data-dir", dir, "list", "--no-headers", "-o", "id,status"); o.code != 0 || strings.Join(strings.Fields(o.stdout), " ") != "1 success" {
		t.Errorf("jobq list as a member of jobq: %s", o)
	}
	// Members of the socket group are no administrators (the packaged
	// configuration sets no admin-group): a join token, which hands out
	// the cluster's key, is refused to them, and their job names them.
	if o := as(t, member, "/usr/bin/jobq", "--data-dir", dir, "cluster", "join-token"); o.code == 0 || !strings.Contains(o.stdout+o.stderr, "JobqJoinToken is an administrative call") {
		t.Errorf("jobq cluster join-token as a member of jobq: %s", o)
	}
	if o := as(t, member, "/usr/bin/jobq", "--data-dir", dir, "list", "--no-headers", "-o", "author"); o.code != 0 || strings.TrimSpace(o.stdout) != "jobq:luxi uid="+member.Uid+"("+member.Username+")" {
		t.Errorf("the author of the member's job: %s", o)
	}
	o := as(t, other, "/usr/bin/jobq", "--data-dir", dir, "list")
	if o.code != 1 || !strings.Contains(o.stderr, "Cannot connect to jobqd at socket '"+sock+"' (permission denied)") {
		t.Errorf("jobq list as a non-member: %s", o)
	}
	d.stop()

	// Remove: programs gone; configuration and data kept; the service's
	// enablement kept too, masked (as debhelper does), and a reinstall
	// unmasks it.
	const wants, mask = "/etc/systemd/system/multi-user.target.wants/jobqd.service", "/etc/systemd/system/jobqd.service"
	linkTo := func(p string) string {
		dst, err := os.Readlink(p)
		if err != nil {
			return ""
		}
		return dst
	}
	haveHelper := exists("/usr/bin/deb-systemd-helper")
	if haveHelper && linkTo(wants) != "/lib/systemd/system/jobqd.service" {
		t.Errorf("installed: %s -> %q, want the enabled unit", wants, linkTo(wants))
	}
	must(t, nil, "dpkg", "-r", "jobq")
	if haveHelper && linkTo(mask) != "/dev/null" {
		t.Errorf("removed: the unit is not masked (%s -> %q)", mask, linkTo(mask))
	}
	must(t, nil, "dpkg", "-i", deb)
	if haveHelper && (exists(mask) || linkTo(wants) != "/lib/systemd/system/jobqd.service") {
		t.Errorf("reinstalled: mask %v, %s -> %q", exists(mask), wants, linkTo(wants))
	}
	must(t, nil, "dpkg", "-r", "jobq")
	for _, p := range []string{"/usr/sbin/jobqd", "/usr/bin/jobq", "/lib/systemd/system/jobqd.service"} {
		if exists(p) {
			t.Errorf("dpkg -r left %s", p)
		}
	}
	for _, p := range []string{confFile, dataDir, filepath.Join(dir, "queue", "job-1")} {
		if !exists(p) {
			t.Errorf("dpkg -r removed %s", p)
		}
	}
	// Purge: configuration gone; data kept.
	purge := run(t, nil, "dpkg", "-P", "jobq")
	if purge.code != 0 {
		t.Fatalf("dpkg -P: %s", purge)
	}
	if exists("/etc/jobq") {
		t.Error("dpkg -P left /etc/jobq")
	}
	for _, p := range []string{wants, mask} {
		if exists(p) {
			t.Errorf("dpkg -P left %s -> %q", p, linkTo(p))
		}
	}
	if !exists(dataDir) || !strings.Contains(purge.stderr, "kept the data directory /var/lib/jobq") {
		t.Errorf("dpkg -P did not keep %s, or did not say so: %s", dataDir, purge)
	}
	// Purge with confirmation removes the data too (only when the test
	// created the data directory).
	if !hadDataDir {
		must(t, nil, "dpkg", "-i", deb)
		if o := run(t, append(os.Environ(), "JOBQ_PURGE_DATA=yes"), "dpkg", "-P", "jobq"); o.code != 0 {
			t.Fatalf("JOBQ_PURGE_DATA=yes dpkg -P: %s", o)
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("JOBQ_PURGE_DATA=yes dpkg -P left %s: %v", dataDir, err)
		}
	}
}
