package pkgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The install test installs and removes the package with dpkg, adds users
// and a group: as root it runs in a throw-away root, so that running the
// tests never changes the machine. TestMain re-executes the test binary
// in a private mount namespace (unshare --mount) in which /etc, /usr, /var
// and /opt are overlays whose upper layers live in a tmpfs, and
// /run/systemd is an empty tmpfs (the maintainer scripts then leave the
// machine's systemd alone). Everything dpkg, useradd and the maintainer
// scripts write lands in the tmpfs and goes with the namespace when the
// tests end; what the machine has shows through the lower layers.
const sandboxEnv = "JOBQ_PKG_SANDBOX"

// sandboxDirs are overlaid, when they are directories (not symlinks to
// /usr, as on a merged-/usr system).
var sandboxDirs = []string{"/etc", "/usr", "/var", "/opt", "/lib", "/bin", "/sbin", "/lib64", "/srv"}

// noSandbox is why the tests do not run in a throw-away root ("" when
// they do, or when not root: then nothing is installed anyway).
var noSandbox string

func TestMain(m *testing.M) {
	switch v := os.Getenv(sandboxEnv); {
	case v == "":
		if os.Geteuid() == 0 {
			os.Exit(reexecInSandbox())
		}
	case v == "inside":
		if err := overlaySystem(os.Getenv(sandboxEnv + "_TMPFS")); err != nil {
			fmt.Fprintf(os.Stderr, "test/package: cannot make the throw-away root: %v\n", err)
			os.Exit(1)
		}
	default:
		noSandbox = v
	}
	os.Exit(m.Run())
}

// reexecInSandbox runs this test binary again in a private mount
// namespace and returns its exit code. When no namespace can be made, the
// tests run here without installing anything (requireInstallable skips,
// saying why).
func reexecInSandbox() int {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return runAgain(nil, sandboxEnv+"=unavailable: no unshare program ("+err.Error()+")")
	}
	mnt, err := os.MkdirTemp("", "jobq-pkg-root-")
	if err != nil {
		return runAgain(nil, sandboxEnv+"=unavailable: "+err.Error())
	}
	defer os.Remove(mnt) // only the empty mount point is left on the machine
	// A namespace that cannot be made fails here, before the tests run.
	if out, err := exec.Command(unshare, "--mount", "true").CombinedOutput(); err != nil {
		return runAgain(nil, fmt.Sprintf("%s=unavailable: unshare --mount: %v %s", sandboxEnv, err, out))
	}
	code := runAgain([]string{unshare, "--mount", "--propagation", "private", "--"},
		sandboxEnv+"=inside", sandboxEnv+"_TMPFS="+mnt)
	// TestSandbox left a file in /etc, inside: it must not be here.
	if probe := probePath(mnt); exists(probe) {
		fmt.Fprintf(os.Stderr, "test/package: %s, written in the throw-away root, is on the machine\n", probe)
		os.Remove(probe)
		return 1
	}
	return code
}

// probePath is the file TestSandbox writes in the throw-away root whose
// tmpfs is at mnt.
func probePath(mnt string) string { return "/etc/" + filepath.Base(mnt) + ".probe" }

// runAgain runs os.Args with prefix before them and env added, passing
// the standard streams through, and returns its exit code.
func runAgain(prefix []string, env ...string) int {
	args := append(append([]string{}, prefix...), os.Args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		fmt.Fprintf(os.Stderr, "test/package: %v\n", err)
		return 1
	}
	return 0
}

// overlaySystem mounts, in this (private) mount namespace, a tmpfs at
// mnt, an overlay on each of sandboxDirs with its upper layer in that
// tmpfs, and an empty tmpfs on /run/systemd.
func overlaySystem(mnt string) error {
	if mnt == "" {
		return errors.New("no mount point given")
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", mnt, err)
	}
	for _, d := range sandboxDirs {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue // absent, or a symlink into an overlaid directory
		}
		upper := filepath.Join(mnt, filepath.Base(d), "upper")
		work := filepath.Join(mnt, filepath.Base(d), "work")
		for _, p := range []string{upper, work} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		}
		if err := os.Chmod(upper, fi.Mode().Perm()); err != nil {
			return err
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d, upper, work)
		if err := syscall.Mount("overlay", d, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay on %s: %w", d, err)
		}
	}
	if fi, err := os.Stat("/run/systemd"); err == nil && fi.IsDir() {
		if err := syscall.Mount("tmpfs", "/run/systemd", "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("tmpfs on /run/systemd: %w", err)
		}
	}
	return nil
}

// TestSandbox: as root, the tests run in the throw-away root: a file
// written to /etc lands in the tmpfs (and TestMain checks, outside, that
// it is not on the machine).
func TestSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: nothing is installed, no throw-away root is needed")
	}
	if noSandbox != "" {
		t.Skipf("no throw-away root (%s): the install test is skipped too", noSandbox)
	}
	if os.Getenv(sandboxEnv) != "inside" {
		t.Fatal("root, but not in the throw-away root")
	}
	mnt := os.Getenv(sandboxEnv + "_TMPFS")
	probe := probePath(mnt)
	if err := os.WriteFile(probe, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Left there: it goes with the namespace.
	if _, err := os.Stat(filepath.Join(mnt, "etc", "upper", filepath.Base(probe))); err != nil {
		t.Errorf("a file written to /etc is not in the throw-away root's upper layer: %v", err)
	}
}
