package daemon

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/client"
)

// The housekeeping's policy and the watcher pause through LUXI on a real
// daemon: defaults, a change applied to the running queue at once, a
// refusal saying what to give, Ganeti's SetWatcherPause and
// QueryConfigValues' watcher_pause, and the settings kept across a
// restart.
func TestHousekeepingSettings(t *testing.T) {
	n := startRAPINode(t, "", 1, rapiUsers)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	dial := func(dir string) *client.Client {
		c, err := client.Dial(ctx, SocketPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial(n.dir)
	info := func(c *client.Client) map[string]any {
		var m map[string]any
		if err := c.Call(ctx, &m, "JobqHousekeeping"); err != nil {
			t.Fatalf("JobqHousekeeping: %v", err)
		}
		return m
	}
	policy := func(m map[string]any) string {
		b, _ := json.Marshal(m["policy"])
		return string(b)
	}
	m := info(c)
	if got, want := policy(m), `{"archive_age":21600,"auto_archive":true,"delete_age":0,"interval":300,"max_bytes":0}`; got != want || m["running"] != true || m["next_run"] == nil {
		t.Fatalf("default housekeeping: %v, policy %s, want %s", m, got, want)
	}
	var ignored any
	err := c.Call(ctx, &ignored, "JobqSetHousekeeping", map[string]any{"interval": 0.5})
	if err == nil || !strings.Contains(err.Error(), "the housekeeping interval 500ms is shorter than 1s; give a longer one, such as 5m") {
		t.Fatalf("JobqSetHousekeeping with a too short interval: %v", err)
	}
	if err := c.Call(ctx, &ignored, "JobqSetHousekeeping", map[string]any{"archive_age": 60, "delete_age": 86400 * 30, "max_bytes": 1 << 30}); err != nil {
		t.Fatalf("JobqSetHousekeeping: %v", err)
	}
	want := `{"archive_age":60,"auto_archive":true,"delete_age":2592000,"interval":300,"max_bytes":1073741824}`
	if got := policy(info(c)); got != want {
		t.Fatalf("policy after the change: %s, want %s", got, want)
	}

	// gnt-cluster watcher pause / info / continue.
	until := float64(time.Now().Add(time.Hour).Unix()) + 0.5
	var res *float64
	if err := c.Call(ctx, &res, "SetWatcherPause", until); err != nil || res == nil || *res != until {
		t.Fatalf("SetWatcherPause: %v %v", res, err)
	}
	var vals []*float64
	// In whole seconds, as luxid answers.
	if err := c.Call(ctx, &vals, "QueryConfigValues", []string{"watcher_pause"}); err != nil || len(vals) != 1 || vals[0] == nil || *vals[0] != math.Floor(until) {
		t.Fatalf("watcher_pause: %v %v, want %v", vals, err, math.Floor(until))
	}
	if n, _ := info(c)["paused_until"].(json.Number); n == "" || math.Abs(must(n.Float64())-until) > 1e-3 {
		t.Fatalf("paused_until %v, want %v", info(c)["paused_until"], until)
	}

	// Kept across a restart (the settings' files).
	n.stop()
	if b, err := os.ReadFile(filepath.Join(n.dir, "cluster", "settings", "queue-housekeeping.json")); err != nil || !strings.Contains(string(b), `"archive_age":60`) {
		t.Fatalf("the stored policy: %s %v", b, err)
	}
	n2 := startRAPINode(t, n.dir, 1, "")
	c2 := dial(n2.dir)
	m = info(c2)
	if got := policy(m); got != want || m["paused_until"] == nil {
		t.Fatalf("after a restart: %v", m)
	}
	if err := c2.Call(ctx, &res, "SetWatcherPause", nil); err != nil || res != nil {
		t.Fatalf("SetWatcherPause(None): %v %v", res, err)
	}
	if err := c2.Call(ctx, &vals, "QueryConfigValues", []string{"watcher_pause"}); err != nil || vals[0] != nil {
		t.Fatalf("watcher_pause after continue: %v %v", vals, err)
	}
	if p := info(c2)["paused_until"]; p != nil {
		t.Fatalf("paused_until after continue: %v", p)
	}
}

func must(f float64, err error) float64 {
	if err != nil {
		return math.NaN()
	}
	return f
}
