package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scripts in testdata/*.txt. Rewrite the expected
// output with `go test ./internal/cluster -run TestScenarios -rewrite`.
// The commands work on one Config:
//
//	config node=N addr=A [pool=P]     NewConfig
//	add-node name=N addr=A            AddNode
//	remove-node name=N                RemoveNode
//	modify-node name=N [candidate=yes|no] [online=yes|no]
//	newer epoch=E serial=S            is (E, S) Newer than the configuration
//	validate                          Validate the input (JSON)
//
// A changing configuration command prints the new configuration or the
// error; a refused change leaves the configuration as it was.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skip("not a scenario")
		}
		s := &sim{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

type sim struct {
	cfg *Config
}

func (s *sim) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "config":
		var node, addr string
		d.ScanArgs(t, "node", &node)
		d.ScanArgs(t, "addr", &addr)
		s.cfg = NewConfig(node, addr)
		if d.HasArg("pool") {
			d.ScanArgs(t, "pool", &s.cfg.CandidatePoolSize)
		}
		return describeConfig(s.cfg)

	case "add-node", "remove-node", "modify-node":
		var name string
		d.ScanArgs(t, "name", &name)
		var next *Config
		var err error
		switch d.Cmd {
		case "add-node":
			var addr string
			d.ScanArgs(t, "addr", &addr)
			next, err = s.cfg.AddNode(name, addr)
		case "remove-node":
			next, err = s.cfg.RemoveNode(name)
		default:
			flag := func(key string) *bool {
				if !d.HasArg(key) {
					return nil
				}
				var v string
				d.ScanArgs(t, key, &v)
				b := v == "yes"
				return &b
			}
			next, err = s.cfg.Modify(name, flag("candidate"), flag("online"))
		}
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		s.cfg = next
		return describeConfig(next)

	case "newer":
		c := s.cfg.Clone()
		d.ScanArgs(t, "epoch", &c.Epoch)
		d.ScanArgs(t, "serial", &c.Serial)
		return fmt.Sprintf("%v\n", c.Newer(s.cfg))

	case "validate":
		var c Config
		if err := json.Unmarshal([]byte(d.Input), &c); err != nil {
			d.Fatalf(t, "%v", err)
		}
		if err := c.Validate(); err != nil {
			return "error: " + err.Error() + "\n"
		}
		return "ok\n"
	}
	d.Fatalf(t, "unknown command %s", d.Cmd)
	return ""
}

func describeConfig(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d serial %d master %s pool %d\n", c.Epoch, c.Serial, c.Master, c.CandidatePoolSize)
	byName := map[string]Node{}
	for _, n := range c.Nodes {
		byName[n.Name] = n
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		n := byName[name]
		online := "online"
		if !n.Online {
			online = "offline"
		}
		fmt.Fprintf(&b, "  %s %s %s %s\n", n.Name, n.Address, c.Role(n.Name), online)
	}
	return b.String()
}
