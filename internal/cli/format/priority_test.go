package format

import "testing"

func TestParsePriority(t *testing.T) {
	for in, want := range map[string]int{
		"high": -10, "normal": 0, "low": 10, "HIGH": -10, "Low": 10,
		"-20": -20, "19": 19, "0": 0, "-10": -10, "5": 5,
	} {
		got, err := ParsePriority(in)
		if err != nil || got != want {
			t.Errorf("ParsePriority(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "urgent", "-21", "20", "1.5", " 1"} {
		if got, err := ParsePriority(in); err == nil {
			t.Errorf("ParsePriority(%q) = %d, want an error", in, got)
		}
	}
	for p, want := range map[int]string{-10: "high", 0: "normal", 10: "low", -20: "-20", 3: "3"} {
		if got := PriorityName(p); got != want {
			t.Errorf("PriorityName(%d) = %q, want %q", p, got, want)
		}
	}
}
