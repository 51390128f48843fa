package queuelog

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/jobq-dev/jobq/internal/noderpc"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// writeTree creates files (relative name -> content) under dir; a name
// ending in "/" is a directory.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o750); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		// live queue files
		"job-1":   "one",
		"job-10":  "ten!",
		"serial":  "10\n",
		"drain":   "",
		"version": "1\n",
		// a schedule's fire record
		"schedule-nightly": `{"last_fire":1}`,
		// not replicated
		"lock":             "",
		"job-01":           "leading zero",
		"job-0":            "zero",
		"job-x":            "not a number",
		"job-":             "empty",
		"foo":              "other",
		".tmp0":            "a temporary file",
		"serial.1":         "lookalike",
		"job-1.tmp":        "lookalike",
		"schedule-":        "no name",
		"schedule-Nightly": "not a schedule name",
		"schedule-a.tmp":   "lookalike",
		"queue/":           "",
		"job-7/":           "",
		// archive
		"archive/0/job-3":       "three",
		"archive/1/job-12345":   "archived 12345",
		"archive/0/job-12345":   "in the wrong bucket",
		"archive/01/job-5":      "bucket with a leading zero",
		"archive/x/job-7":       "not a bucket",
		"archive/0/notajob":     "not a job",
		"archive/0/.tmp1":       "temporary",
		"archive/-1/job-8":      "negative bucket",
		"archive/1/job-9999":    "job 9999 belongs to bucket 0",
		"archive/0/sub/job-4":   "nested",
		"archive/2/":            "",
		"archive/0/job-4/":      "",
		"archive/0/job-40/job-": "",
	})
	if err := os.WriteFile(filepath.Join(dir, "archive", "3"), []byte("a file, not a bucket"), 0o640); err != nil {
		t.Fatal(err)
	}
	live := []noderpc.FileInfo{
		{Name: "drain", Size: 0, SHA256: sum("")},
		{Name: "job-1", Size: 3, SHA256: sum("one")},
		{Name: "job-10", Size: 4, SHA256: sum("ten!")},
		{Name: "schedule-nightly", Size: 15, SHA256: sum(`{"last_fire":1}`)},
		{Name: "serial", Size: 3, SHA256: sum("10\n")},
		{Name: "version", Size: 2, SHA256: sum("1\n")},
	}
	tests := []struct {
		name          string
		archive, hash bool
		wantArch      []noderpc.FileInfo
	}{
		{"live only", false, false, nil},
		{"live only, hash ignored", false, true, nil},
		{"archive by name", true, false, []noderpc.FileInfo{
			{Name: "archive/0/job-3"},
			{Name: "archive/1/job-12345"},
		}},
		{"archive hashed", true, true, []noderpc.FileInfo{
			{Name: "archive/0/job-3", Size: 5, SHA256: sum("three")},
			{Name: "archive/1/job-12345", Size: 14, SHA256: sum("archived 12345")},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotLive, gotArch, err := Scan(dir, tc.archive, tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotLive, live) {
				t.Errorf("live files:\n got %+v\nwant %+v", gotLive, live)
			}
			if !reflect.DeepEqual(gotArch, tc.wantArch) {
				t.Errorf("archive:\n got %+v\nwant %+v", gotArch, tc.wantArch)
			}
		})
	}
}

func TestScanEdges(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		if _, _, err := Scan(filepath.Join(t.TempDir(), "nothing"), true, true); err == nil {
			t.Fatal("Scan of a missing directory succeeded")
		}
	})
	t.Run("no archive directory", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{"job-2": "x"})
		live, arch, err := Scan(dir, true, true)
		if err != nil {
			t.Fatal(err)
		}
		if want := []noderpc.FileInfo{{Name: "job-2", Size: 1, SHA256: sum("x")}}; !reflect.DeepEqual(live, want) || arch != nil {
			t.Fatalf("Scan = %+v, %+v; want %+v and no archive", live, arch, want)
		}
	})
	t.Run("empty", func(t *testing.T) {
		live, arch, err := Scan(t.TempDir(), true, false)
		if err != nil || live != nil || arch != nil {
			t.Fatalf("Scan of an empty directory = %+v, %+v, %v", live, arch, err)
		}
	})
	t.Run("archive order is by name", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{
			"archive/10/job-100000": "a", "archive/2/job-20000": "b", "archive/0/job-9": "c", "archive/0/job-10": "d",
		})
		_, arch, err := Scan(dir, true, false)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range arch {
			names = append(names, f.Name)
		}
		want := []string{"archive/0/job-10", "archive/0/job-9", "archive/10/job-100000", "archive/2/job-20000"}
		if !reflect.DeepEqual(names, want) {
			t.Fatalf("archive names %q, want %q", names, want)
		}
	})
}

func TestCompare(t *testing.T) {
	f := func(name, content string) noderpc.FileInfo {
		return noderpc.FileInfo{Name: name, Size: int64(len(content)), SHA256: sum(content)}
	}
	byName := func(name string) noderpc.FileInfo { return noderpc.FileInfo{Name: name} }
	tests := []struct {
		name     string
		ref, rep []noderpc.FileInfo
		want     Diff
	}{
		{"both empty", nil, nil, Diff{}},
		{"equal", []noderpc.FileInfo{f("job-1", "a"), f("serial", "1\n")}, []noderpc.FileInfo{f("serial", "1\n"), f("job-1", "a")}, Diff{}},
		{"missing", []noderpc.FileInfo{f("job-1", "a"), f("job-2", "b"), f("serial", "2\n")}, []noderpc.FileInfo{f("job-1", "a")},
			Diff{Write: []string{"job-2", "serial"}}},
		{"replica empty", []noderpc.FileInfo{f("job-2", "b"), f("job-1", "a")}, nil, Diff{Write: []string{"job-2", "job-1"}}},
		{"differ", []noderpc.FileInfo{f("job-1", "a"), f("job-2", "b")}, []noderpc.FileInfo{f("job-1", "a"), f("job-2", "B")},
			Diff{Write: []string{"job-2"}}},
		{"same hash, other size", []noderpc.FileInfo{f("job-1", "a")}, []noderpc.FileInfo{{Name: "job-1", Size: 7, SHA256: sum("a")}},
			Diff{Write: []string{"job-1"}}},
		{"extra", []noderpc.FileInfo{f("job-1", "a")}, []noderpc.FileInfo{f("job-9", "z"), f("job-1", "a"), f("drain", ""), f("job-10", "y")},
			Diff{Remove: []string{"drain", "job-10", "job-9"}}},
		{"reference empty", nil, []noderpc.FileInfo{f("job-1", "a")}, Diff{Remove: []string{"job-1"}}},
		{"all three", []noderpc.FileInfo{f("job-1", "a"), f("job-2", "b"), f("job-3", "c")}, []noderpc.FileInfo{f("job-2", "x"), f("job-3", "c"), f("job-4", "d")},
			Diff{Write: []string{"job-1", "job-2"}, Remove: []string{"job-4"}}},
		{"by name: no hash on the replica", []noderpc.FileInfo{f("archive/0/job-1", "a")}, []noderpc.FileInfo{byName("archive/0/job-1")}, Diff{}},
		{"by name: no hash in the reference", []noderpc.FileInfo{byName("archive/0/job-1")}, []noderpc.FileInfo{f("archive/0/job-1", "zzz")}, Diff{}},
		{"by name: neither hashed", []noderpc.FileInfo{byName("archive/0/job-1"), byName("archive/0/job-2")},
			[]noderpc.FileInfo{byName("archive/0/job-2"), byName("archive/0/job-3")},
			Diff{Write: []string{"archive/0/job-1"}, Remove: []string{"archive/0/job-3"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Compare(tc.ref, tc.rep)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Compare = %+v, want %+v", got, tc.want)
			}
			if got.Empty() != (len(tc.want.Write) == 0 && len(tc.want.Remove) == 0) {
				t.Fatalf("Empty() = %v for %+v", got.Empty(), got)
			}
		})
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"job-1": "one", "serial": "1\n", "drain": "", "archive/0/job-3": "three", "lock": "", "secret": "no",
	})
	tests := []struct {
		name  string
		names []string
		want  []noderpc.Change
		bad   bool
	}{
		{"none", nil, []noderpc.Change{}, false},
		{"some", []string{"job-1", "job-2", "archive/0/job-3", "serial", "drain", "version", "archive/0/job-4"}, []noderpc.Change{
			{Op: noderpc.OpWrite, Name: "job-1", Data: []byte("one")},
			{Op: noderpc.OpWrite, Name: "archive/0/job-3", Data: []byte("three")},
			{Op: noderpc.OpWrite, Name: "serial", Data: []byte("1\n")},
			{Op: noderpc.OpWrite, Name: "drain", Data: []byte{}},
		}, false},
		{"lock", []string{"lock"}, nil, true},
		{"other file", []string{"secret"}, nil, true},
		{"parent", []string{"../job-1"}, nil, true},
		{"absolute", []string{"/etc/passwd"}, nil, true},
		{"dot dot in the archive", []string{"archive/0/../../secret"}, nil, true},
		{"wrong bucket", []string{"archive/1/job-3"}, nil, true},
		{"leading zero", []string{"job-01"}, nil, true},
		{"empty", []string{""}, nil, true},
		{"bad after good ones", []string{"job-1", "serial", "../../etc/shadow"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFiles(dir, tc.names)
			if tc.bad {
				if err == nil || got != nil {
					t.Fatalf("ReadFiles(%q) = %+v, %v; want a refusal", tc.names, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ReadFiles(%q):\n got %+v\nwant %+v", tc.names, got, tc.want)
			}
		})
	}
}
