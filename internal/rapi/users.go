package rapi

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Realm is the HTTP authentication realm, Ganeti's. {HA1} passwords are
// MD5("user:Ganeti Remote API:password") in hex.
const Realm = "Ganeti Remote API"

// Access rights a user can hold (the options column of the users file).
const (
	AccessWrite = "write"
	AccessRead  = "read"
	// AccessAdmin is jobq's: administrative calls that Ganeti's RAPI
	// cannot make (jobs with an administrative opcode such as
	// OP_RESTRICTED_COMMAND or OP_CLUSTER_SET_PARAMS, the dashboard's
	// drain). Ganeti's users file has no such option; its write users
	// keep what they may do in Ganeti (filter changes included).
	AccessAdmin = "admin"
)

// User is one line of the users file.
type User struct {
	Name string
	// Password is as written in the file: "{HA1}<hex>", "{CLEARTEXT}pw"
	// or a bare cleartext password.
	Password string
	Options  []string
}

// Has reports whether the user holds an access right.
func (u *User) Has(access string) bool {
	for _, o := range u.Options {
		if o == access {
			return true
		}
	}
	return false
}

// ParseUsers parses a users file in Ganeti's format: one user per line,
// "name password [options]", fields separated by white space, options
// separated by commas ("write", "read"); empty lines and lines starting
// with '#' are ignored, as are lines with fewer than two fields. A later
// line for the same name replaces an earlier one.
func ParseUsers(data string) map[string]*User {
	users := map[string]*User{}
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := pySplit(line, 2)
		if len(parts) < 2 {
			continue
		}
		u := &User{Name: parts[0], Password: parts[1]}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				u.Options = append(u.Options, strings.TrimSpace(o))
			}
		}
		users[u.Name] = u
	}
	return users
}

// pySplit splits s at runs of white space at most n times, as Python's
// s.split(None, n): the last part keeps the rest of s.
func pySplit(s string, n int) []string {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t\r\n\v\f")
		if s == "" {
			return parts
		}
		if len(parts) == n {
			return append(parts, strings.TrimRight(s, " \t\r\n\v\f"))
		}
		i := strings.IndexAny(s, " \t\r\n\v\f")
		if i < 0 {
			return append(parts, s)
		}
		parts = append(parts, s[:i])
		s = s[i:]
	}
}

// CheckPassword verifies password for user against expected, the password
// column of the users file, as Ganeti does: without a "{SCHEME}" prefix it
// is cleartext; {CLEARTEXT} is cleartext; {HA1} is the hex MD5 of
// "user:realm:password" (compared case-insensitively). Any other scheme
// never matches.
func CheckPassword(user, password, expected string) bool {
	if !strings.HasPrefix(expected, "{") {
		expected = "{CLEARTEXT}" + expected
	}
	end := strings.Index(expected[1:], "}") + 1
	if end <= 1 {
		return false
	}
	scheme := strings.ToUpper(expected[:end+1])
	want := expected[end+1:]
	switch scheme {
	case "{CLEARTEXT}":
		return subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
	case "{HA1}":
		sum := md5.Sum([]byte(user + ":" + Realm + ":" + password))
		got := hex.EncodeToString(sum[:])
		return subtle.ConstantTimeCompare([]byte(got), []byte(strings.ToLower(want))) == 1
	}
	return false
}

// HA1 returns the {HA1} form of a password, for writing a users file.
func HA1(user, password string) string {
	sum := md5.Sum([]byte(user + ":" + Realm + ":" + password))
	return "{HA1}" + hex.EncodeToString(sum[:])
}

// userDB is the users file, re-read when it changes. Every lookup stats
// the file (a cheap system call); the file is parsed again only when its
// identity, size, modification or change time differ.
type userDB struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	stamp fileStamp
	users map[string]*User
}

type fileStamp struct {
	exists       bool
	dev, ino     uint64
	size         int64
	mtime, ctime time.Time
}

func stampOf(fi fs.FileInfo) fileStamp {
	s := fileStamp{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
		s.ctime = time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return s
}

func newUserDB(path string, log *slog.Logger) *userDB {
	db := &userDB{path: path, log: log}
	db.mu.Lock()
	db.refreshLocked(true)
	db.mu.Unlock()
	return db
}

// lookup returns the user called name, or nil.
func (db *userDB) lookup(name string) *User {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.refreshLocked(false)
	return db.users[name]
}

func (db *userDB) refreshLocked(first bool) {
	if db.path == "" {
		return
	}
	fi, err := os.Stat(db.path)
	var st fileStamp
	if err == nil {
		st = stampOf(fi)
	}
	if !first && st == db.stamp {
		return
	}
	db.stamp = st
	if err != nil {
		db.users = nil
		if errors.Is(err, fs.ErrNotExist) {
			db.log.Warn("no RAPI users file: only requests without credentials to read-only resources are answered", "file", db.path)
		} else {
			db.log.Error("cannot read the RAPI users file; nobody can authenticate", "file", db.path, "err", err)
		}
		return
	}
	b, err := os.ReadFile(db.path)
	if err != nil {
		db.users = nil
		db.stamp = fileStamp{} // try again next time
		db.log.Error("cannot read the RAPI users file; nobody can authenticate", "file", db.path, "err", err)
		return
	}
	db.users = ParseUsers(string(b))
	if fi.Mode().Perm()&0o004 != 0 {
		db.log.Warn("the RAPI users file is readable by everyone; make it mode 0600 or 0640", "file", db.path)
	}
	db.log.Info("read the RAPI users file", "file", db.path, "users", len(db.users))
}
