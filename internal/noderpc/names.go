package noderpc

import (
	"fmt"
	"strconv"
	"strings"
)

// archiveBucket is how many jobs share an archive directory:
// archive/<N div archiveBucket>/job-N.
const archiveBucket = 10000

// nameError is ValidQueueName's refusal of a name.
type nameError struct {
	name   string
	reason string // why, when more can be said than "not a queue file"
}

func (e *nameError) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("%q is not a queue file name: %s", e.name, e.reason)
	}
	return fmt.Sprintf("%q is not a queue file name (job-N, serial, drain, version, schedule-NAME or archive/D/job-N)", e.name)
}

func validQueueName(name string) error {
	switch name {
	case "serial", "drain", "version":
		return nil
	}
	if _, ok := jobNumber(name); ok {
		return nil
	}
	if sched, ok := strings.CutPrefix(name, "schedule-"); ok && validScheduleName(sched) {
		return nil // a schedule's fire record
	}
	if rest, ok := strings.CutPrefix(name, "archive/"); ok {
		if dir, file, ok := strings.Cut(rest, "/"); ok {
			if n, ok := jobNumber(file); ok {
				want := strconv.FormatInt(n/archiveBucket, 10)
				if dir == want {
					return nil
				}
				return &nameError{name: name, reason: fmt.Sprintf("job %d is archived under archive/%s", n, want)}
			}
		}
	}
	return &nameError{name: name}
}

// jobNumber parses "job-N" with N a decimal number from 1, without sign or
// leading zeros, that fits an int64.
func jobNumber(s string) (int64, bool) {
	digits, ok := strings.CutPrefix(s, "job-")
	if !ok || digits == "" || digits[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

// checkFetch refuses a FetchRequest for a file that is not a queue file.
func checkFetch(req *FetchRequest) error {
	for _, name := range req.Names {
		if err := validQueueName(name); err != nil {
			return err
		}
	}
	return nil
}

// checkFetchReply refuses a FetchReply holding a file that is not a queue
// file: the caller is about to write what it got.
func checkFetchReply(addr string, rep *FetchReply) error {
	for _, f := range rep.Files {
		if err := validQueueName(f.Name); err != nil {
			return fmt.Errorf("node at %s sent a file that is not a queue file: %w", addr, err)
		}
	}
	return nil
}

// validScheduleName: a schedule's name, 1 to 64 of a-z, 0-9 and -.
func validScheduleName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
