package web

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxAuthorSearch is the longest author the job list searches for.
const maxAuthorSearch = 200

// validAuthorSearch reports whether want can name an author: at most
// maxAuthorSearch bytes of UTF-8 without control characters.
func validAuthorSearch(want string) bool {
	if len(want) > maxAuthorSearch || !utf8.ValidString(want) {
		return false
	}
	return strings.IndexFunc(want, unicode.IsControl) < 0
}

// authorMatch reports whether a job's author ("SOURCE WHO" as the queue's
// author field answers it, package author; "" for none) is the one asked
// for. want matches, case-sensitively:
//
//   - the whole author or its start: "jobq:rapi alice", "jobq:rapi",
//     "jobq:schedule:" (every schedule), "jobq:luxi uid=1000";
//   - who, exactly: "alice" (a RAPI or dashboard user), "node1" (a node,
//     or the master a schedule fired on), "uid=1000(alice)";
//   - a LUXI user's name or uid, exactly: "alice", "uid=1000".
//
// A job without an author matches nothing.
func authorMatch(a, want string) bool {
	if a == "" || want == "" {
		return false
	}
	if strings.HasPrefix(a, want) {
		return true
	}
	_, who, _ := strings.Cut(a, " ")
	if who == want {
		return true
	}
	// LUXI: "uid=1000(alice)" or "uid=1000".
	if strings.HasPrefix(a, "jobq:luxi ") {
		uid, name, hasName := strings.Cut(who, "(")
		if uid == want || hasName && strings.TrimSuffix(name, ")") == want {
			return true
		}
	}
	return false
}
