// Package buildinfo says which jobq a program is: its version, the commit it
// was built from and the Go version, for "jobq version" and "jobqd
// --version". Release builds set the version and commit with the linker
// (packaging/build-deb.sh):
//
//	go build -ldflags "-X github.com/jobq-dev/jobq/internal/buildinfo.version=1.2.3 \
//	    -X github.com/jobq-dev/jobq/internal/buildinfo.commit=0123abc..."
//
// Other builds take them from the module's build information (the module
// version when built with "go install module@version", the VCS revision
// when built in a checkout), else "devel" and "unknown".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-X) in release builds.
var (
	version string
	commit  string
)

// Info is what a program says about its build.
type Info struct {
	Version   string // e.g. "1.2.3" or "devel"
	Commit    string // the VCS revision, "-dirty" appended for a modified tree, or "unknown"
	GoVersion string // e.g. "go1.27.3"
}

// Get returns the running program's build information.
func Get() Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if i.Commit == "" {
			var rev, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if rev != "" && modified == "true" {
				rev += "-dirty"
			}
			i.Commit = rev
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// String is the version line of program: "jobq 1.2.3 (commit 0123abc,
// go1.27.3)". jobq and jobqd print it the same way.
func String(program string) string {
	i := Get()
	return fmt.Sprintf("%s %s (commit %s, %s)", program, i.Version, i.Commit, i.GoVersion)
}
