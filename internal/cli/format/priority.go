package format

import (
	"fmt"
	"strconv"
	"strings"
)

// Opcode priorities: a lower number runs first.
const (
	PriorityHighest = -20
	PriorityHigh    = -10
	PriorityNormal  = 0
	PriorityLow     = 10
	PriorityLowest  = 19
)

// ParsePriority parses a --priority value: high (-10), normal (0), low
// (10), or a number from -20 (most urgent) to 19. Names are case
// insensitive.
func ParsePriority(s string) (int, error) {
	switch strings.ToLower(s) {
	case "high":
		return PriorityHigh, nil
	case "normal":
		return PriorityNormal, nil
	case "low":
		return PriorityLow, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < PriorityHighest || n > PriorityLowest {
		return 0, fmt.Errorf("invalid priority %q: use high, normal, low or a number from %d to %d", s, PriorityHighest, PriorityLowest)
	}
	return n, nil
}

// PriorityName returns "high", "normal" or "low" for those priorities and
// the number otherwise.
func PriorityName(p int) string {
	switch p {
	case PriorityHigh:
		return "high"
	case PriorityNormal:
		return "normal"
	case PriorityLow:
		return "low"
	}
	return strconv.Itoa(p)
}
