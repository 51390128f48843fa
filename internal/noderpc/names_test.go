package noderpc

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestValidQueueName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"job-1", true},
		{"job-9", true},
		{"job-10", true},
		{"job-123456789", true},
		{"job-9223372036854775807", true},
		{"serial", true},
		{"drain", true},
		{"version", true},
		{"archive/0/job-1", true},
		{"archive/0/job-9999", true},
		{"archive/1/job-10000", true},
		{"archive/12/job-123456", true},
		{"schedule-nightly", true},
		{"schedule-a-1", true},
		{"schedule-", false},
		{"schedule-Nightly", false},
		{"schedule-../job-1", false},
		{"schedule-a/b", false},
		{"schedule-" + strings.Repeat("a", 65), false},

		{"", false},
		{"job-", false},
		{"job-0", false},
		{"job-01", false},
		{"job-+1", false},
		{"job--1", false},
		{"job-1a", false},
		{"job-1 ", false},
		{" job-1", false},
		{"job-1/x", false},
		{"job-1/", false},
		{"job-9223372036854775808", false},
		{"JOB-1", false},
		{"job-１", false},
		{"lock", false},
		{"serial.tmp", false},
		{"version/", false},
		{"queue/job-1", false},
		{"..", false},
		{".", false},
		{"../job-1", false},
		{"/job-1", false},
		{"/etc/passwd", false},
		{"./job-1", false},
		{`job-1\..\x`, false},
		{`archive\0\job-1`, false},
		{"job-1\x00", false},
		{"archive", false},
		{"archive/", false},
		{"archive/0", false},
		{"archive/0/", false},
		{"archive/x/job-1", false},
		{"archive/00/job-1", false},
		{"archive/-0/job-1", false},
		{"archive/1/job-1", false},
		{"archive/0/job-10000", false},
		{"archive//job-1", false},
		{"archive/0//job-1", false},
		{"archive/0/job-1/x", false},
		{"archive/0/../job-1", false},
		{"archive/0/serial", false},
		{"archive/0/archive/0/job-1", false},
		{"quarantine/job-1", false},
	} {
		err := ValidQueueName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidQueueName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Quote(tc.name)) {
			t.Errorf("ValidQueueName(%q): %q does not name the file", tc.name, err)
		}
	}
	if err := ValidQueueName("archive/1/job-1"); err == nil || err.Error() != `"archive/1/job-1" is not a queue file name: job 1 is archived under archive/0` {
		t.Errorf("wrong bucket: %v", err)
	}
}

func FuzzValidQueueName(f *testing.F) {
	for _, seed := range []string{"job-1", "serial", "drain", "version", "lock", "archive/0/job-1", "archive/1/job-10000",
		"..", "/job-1", "job-01", "job-1/x", `a\b`, "archive/x/job-1", "archive/0/../job-1", "job-1\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidQueueName(name)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Errorf("ValidQueueName(%q): %q does not name the file", name, err)
			}
			return
		}
		if strings.Contains(name, "..") || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
			t.Fatalf("accepted %q", name)
		}
		if filepath.Clean(name) != name || !filepath.IsLocal(name) {
			t.Fatalf("accepted %q, which is not a clean local path", name)
		}
		dir := filepath.Join("data", "queue")
		if rel, err := filepath.Rel(dir, filepath.Join(dir, filepath.FromSlash(name))); err != nil || filepath.ToSlash(rel) != name {
			t.Fatalf("accepted %q, which leads to %q inside the queue directory", name, rel)
		}
	})
}
