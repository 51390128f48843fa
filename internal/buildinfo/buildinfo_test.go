package buildinfo

import (
	"regexp"
	"runtime"
	"testing"
)

func TestStringHasVersionCommitAndGo(t *testing.T) {
	s := String("jobq")
	re := regexp.MustCompile(`^jobq \S+ \(commit \S+, ` + regexp.QuoteMeta(runtime.Version()) + `\)$`)
	if !re.MatchString(s) {
		t.Fatalf("String = %q, want %s", s, re)
	}
}

func TestLinkerValuesWin(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.3", "0123abc"
	if got, want := String("jobqd"), "jobqd 1.2.3 (commit 0123abc, "+runtime.Version()+")"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	if i := Get(); i.Version != "1.2.3" || i.Commit != "0123abc" || i.GoVersion != runtime.Version() {
		t.Fatalf("Get = %+v", i)
	}
}
