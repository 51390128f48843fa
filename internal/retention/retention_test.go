package retention

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"pgregory.net/rapid"
)

// TestScripts runs testdata/*.txt. Commands:
//
//	policy                 Parse of the input block, then its JSON
//	finals                 the live final jobs: "ID ENDED" lines (seconds)
//	archive t=T            ToArchive at T with the last policy
//	files                  archived files: "ID ARCHIVED SIZE" lines
//	delete t=T             ToDelete at T with the last policy
//	paused t=T             Paused at T, the input block being PauseKey's value
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		p := Default()
		var finals []Final
		var files []Archived
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var now time.Time
			if d.HasArg("t") {
				var s int64
				d.ScanArgs(t, "t", &s)
				now = time.Unix(s, 0)
			}
			lines := func(n int) [][]int64 {
				var out [][]int64
				for _, l := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					f := strings.Fields(l)
					if len(f) != n {
						d.Fatalf(t, "line %q needs %d numbers", l, n)
					}
					row := make([]int64, n)
					for i := range f {
						v, err := strconv.ParseInt(f[i], 10, 64)
						if err != nil {
							d.Fatalf(t, "line %q: %v", l, err)
						}
						row[i] = v
					}
					out = append(out, row)
				}
				return out
			}
			switch d.Cmd {
			case "policy":
				np, err := Parse([]byte(d.Input))
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				p = np
				return fmt.Sprintf("%+v\n%s\n", p, p.JSON())
			case "finals":
				finals = nil
				for _, r := range lines(2) {
					finals = append(finals, Final{ID: r[0], Ended: time.Unix(r[1], 0)})
				}
				return "ok\n"
			case "archive":
				return fmt.Sprintf("%v\n", ToArchive(finals, now, p))
			case "files":
				files = nil
				for _, r := range lines(3) {
					files = append(files, Archived{ID: r[0], Archived: time.Unix(r[1], 0), Size: r[2]})
				}
				return "ok\n"
			case "delete":
				return fmt.Sprintf("%v\n", ToDelete(files, now, p))
			case "paused":
				until, ok := PauseUntil([]byte(d.Input))
				if !ok {
					return fmt.Sprintf("paused=%v (no pause)\n", Paused([]byte(d.Input), now))
				}
				return fmt.Sprintf("paused=%v until=%d\n", Paused([]byte(d.Input), now), until.Unix())
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// TestToDeleteProperties: what stays is within the budget and younger
// than the age; nothing is deleted that need not be (each deleted file
// is old, or the budget was exceeded without it).
func TestToDeleteProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		files := make([]Archived, n)
		for i := range files {
			files[i] = Archived{ID: int64(i + 1), Archived: time.Unix(rapid.Int64Range(0, 1000).Draw(t, "at"), 0),
				Size: rapid.Int64Range(0, 100).Draw(t, "size")}
		}
		p := Policy{Interval: time.Minute,
			DeleteAge: time.Duration(rapid.Int64Range(0, 1000).Draw(t, "age")) * time.Second,
			MaxBytes:  rapid.Int64Range(0, 1500).Draw(t, "budget")}
		now := time.Unix(1000, 0)
		del := ToDelete(files, now, p)
		if !slices.IsSorted(del) {
			t.Fatalf("ToDelete not in id order: %v", del)
		}
		var kept int64
		var youngestDeleted time.Time
		for _, f := range files {
			old := p.DeleteAge > 0 && !f.Archived.After(now.Add(-p.DeleteAge))
			if slices.Contains(del, f.ID) {
				if f.Archived.After(youngestDeleted) {
					youngestDeleted = f.Archived
				}
				continue
			}
			if old {
				t.Fatalf("file %d archived at %v is older than %s and kept", f.ID, f.Archived.Unix(), p.DeleteAge)
			}
			kept += f.Size
		}
		if p.MaxBytes > 0 && kept > p.MaxBytes {
			t.Fatalf("kept %d bytes over the budget %d", kept, p.MaxBytes)
		}
		if p.DeleteAge <= 0 && p.MaxBytes <= 0 && len(del) > 0 {
			t.Fatalf("no policy, yet deletes %v", del)
		}
		// Oldest first: every kept file is at least as young as every
		// deleted one.
		for _, f := range files {
			if !slices.Contains(del, f.ID) && len(del) > 0 && f.Archived.Before(youngestDeleted) {
				t.Fatalf("kept file %d (archived %v) is older than a deleted one (%v)", f.ID, f.Archived.Unix(), youngestDeleted.Unix())
			}
		}
	})
}

func TestToArchiveProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		jobs := make([]Final, n)
		for i := range jobs {
			jobs[i] = Final{ID: int64(n - i), Ended: time.Unix(rapid.Int64Range(0, 100000).Draw(t, "end"), 0)}
		}
		p := Default()
		p.ArchiveAge = time.Duration(rapid.Int64Range(0, 100000).Draw(t, "age")) * time.Second
		now := time.Unix(100000, 0)
		got := ToArchive(jobs, now, p)
		if !slices.IsSorted(got) {
			t.Fatalf("not in id order: %v", got)
		}
		for _, j := range jobs {
			want := now.Sub(j.Ended) >= p.ArchiveAge
			if slices.Contains(got, j.ID) != want {
				t.Fatalf("job %d ended %s ago, age %s: archived=%v", j.ID, now.Sub(j.Ended), p.ArchiveAge, !want)
			}
		}
		p.AutoArchive = false
		if got := ToArchive(jobs, now, p); got != nil {
			t.Fatalf("auto-archive off, yet %v", got)
		}
	})
}
