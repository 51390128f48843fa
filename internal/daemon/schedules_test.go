package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// Schedules through LUXI on a real daemon: added (the setting written),
// fired by the master (a job and its fire record), refused in a sentence
// when wrong, paused, removed.
func TestSchedulesOverLUXI(t *testing.T) {
	n := startRAPINode(t, "", 2, rapiUsers)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c, err := client.Dial(ctx, SocketPath(n.dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	op := json.RawMessage(`{"OP_ID": "OP_TEST_DELAY", "duration": 0.001, "no_locks": true}`)
	add := func(spec map[string]any) error {
		var ok bool
		return c.Call(ctx, &ok, "JobqScheduleAdd", spec)
	}
	if err := add(map[string]any{"name": "tick", "every": 1, "ops": []any{op}}); err != nil {
		t.Fatalf("JobqScheduleAdd: %v", err)
	}
	for _, tc := range []struct {
		spec map[string]any
		want string
	}{
		{map[string]any{"name": "tick", "every": 1, "ops": []any{op}}, "schedule tick exists already; remove it first ('jobq schedule remove tick') or choose another name"},
		{map[string]any{"name": "bad", "cron": "* * *", "ops": []any{op}}, `give five fields such as "0 3 * * *"`},
		{map[string]any{"name": "bad", "every": 60, "ops": []any{op}, "concurrency": "never"}, `the concurrency policy "never" is not one of allow, forbid, replace`},
	} {
		if err := add(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("JobqScheduleAdd %v: %v, want an error saying %q", tc.spec, err, tc.want)
		}
	}
	var ok bool
	if err := c.Call(ctx, &ok, "JobqScheduleSet", "nosuch", map[string]bool{"paused": true}); err == nil ||
		!strings.Contains(err.Error(), "there is no schedule nosuch ('jobq schedule list' lists them)") {
		t.Errorf("pausing a schedule that does not exist: %v", err)
	}
	type info struct {
		Name     string   `json:"name"`
		Paused   bool     `json:"paused"`
		LastJob  int64    `json:"last_job"`
		NextFire *float64 `json:"next_fire"`
	}
	list := func() []info {
		var l []info
		if err := c.Call(ctx, &l, "JobqScheduleList"); err != nil {
			t.Fatalf("JobqScheduleList: %v", err)
		}
		return l
	}
	// The schedule fires every second: wait (with a deadline) for its
	// first job.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var l []info
	for l = list(); len(l) != 1 || l[0].LastJob == 0; l = list() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the schedule made no job in %s: %+v", callTimeout, l)
		}
	}
	if l[0].Name != "tick" || l[0].NextFire == nil {
		t.Fatalf("schedule list: %+v", l)
	}
	rows, err := c.QueryJobs(ctx, []int64{l[0].LastJob}, "ops")
	if err != nil || !strings.Contains(string(rows[0][0]), "OP_TEST_DELAY") {
		t.Fatalf("the schedule's job %d: %s %v", l[0].LastJob, rows, err)
	}
	// RAPI's view (no credentials needed to read).
	r := n.do("GET", "/2/schedules", "", "", "")
	var rs []map[string]any
	if err := json.Unmarshal([]byte(r.body), &rs); err != nil || r.code != 200 || len(rs) != 1 ||
		rs[0]["name"] != "tick" || rs[0]["every"] != 1.0 || rs[0]["concurrency"] != "allow" || rs[0]["next_fire"] == nil || rs[0]["last_job"] == 0.0 {
		t.Fatalf("GET /2/schedules: %d %s", r.code, r.body)
	}
	// The queue's files follow the log within the store's flush
	// interval: wait for the fire record.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(n.dir, "queue", "schedule-tick"))
		if err == nil && strings.Contains(string(b), `"last_fire"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fire record, 10s after the schedule fired: %s %v", b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(n.dir, "cluster", "settings", "schedules.json")); err != nil || !strings.Contains(string(b), `"name":"tick"`) {
		t.Fatalf("the schedules setting: %s %v", b, err)
	}
	if err := c.Call(ctx, &ok, "JobqScheduleSet", "tick", map[string]bool{"paused": true}); err != nil {
		t.Fatal(err)
	}
	if l := list(); len(l) != 1 || !l[0].Paused {
		t.Fatalf("after pause: %+v", l)
	}
	if err := c.Call(ctx, &ok, "JobqScheduleRemove", "tick"); err != nil {
		t.Fatal(err)
	}
	if l := list(); len(l) != 0 {
		t.Fatalf("after remove: %+v", l)
	}
}
