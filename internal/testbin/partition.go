package testbin

import (
	"os"
	"os/exec"
	"testing"
)

// Partition drops every packet between the address a and each of others
// (IP addresses; nodes must send from their own address) with iptables,
// until heal is called or the test ends. It needs root and iptables:
// without them the test fails in CI and skips elsewhere (Missing).
func Partition(t *testing.T, a string, others ...string) (heal func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "the partition test needs root (iptables)")
	}
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		Missing(t, "the partition test needs iptables")
	}
	var rules [][]string
	for _, o := range others {
		rules = append(rules, []string{"INPUT", "-s", a, "-d", o, "-j", "DROP"},
			[]string{"INPUT", "-s", o, "-d", a, "-j", "DROP"})
	}
	for _, r := range rules {
		if out, err := exec.Command(ipt, append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			Missing(t, "iptables does not work here: %v %s", err, out)
		}
	}
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		for _, r := range rules {
			if out, err := exec.Command(ipt, append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables -D %v: %v %s", r, err, out)
			}
		}
	}
	t.Cleanup(heal)
	return heal
}
