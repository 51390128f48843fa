package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/author"
	"github.com/jobq-dev/jobq/luxi"
)

// authz is who may make administrative LUXI calls (author.Policy) and the
// user database read for it, cached.
type authz struct {
	policy    author.Policy
	groupName string // Options.AdminGroup

	mu    sync.Mutex
	users map[uint32]cachedUser
}

type cachedUser struct {
	name   string
	groups []uint32
	at     time.Time
}

// userCacheTTL is how long a user's name and groups are kept: a change
// of the group file counts after at most that long.
const userCacheTTL = time.Minute

// newAuthz resolves the admin group (by name or number) to its gid; a
// group that does not exist fails the start: jobqd must not guess who
// its administrators are.
func newAuthz(group string) (*authz, error) {
	a := &authz{groupName: group, users: map[uint32]cachedUser{}}
	a.policy.DaemonUID = uint32(os.Geteuid())
	if group == "" {
		return a, nil
	}
	if gid, err := strconv.ParseUint(group, 10, 32); err == nil {
		// A gid: it need not have a name.
		a.policy.AdminGID, a.policy.HasAdminGroup = uint32(gid), true
		return a, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return nil, fmt.Errorf("admin group %q: %v; create the group, or give --admin-group an existing one", group, err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("admin group %q has gid %q, not a number", group, g.Gid)
	}
	a.policy.AdminGID, a.policy.HasAdminGroup = uint32(gid), true
	a.groupName = g.Name
	return a, nil
}

// user returns uid's name and groups ("" and none for a uid without a
// name), from the cache when fresh.
func (a *authz) user(uid uint32) (string, []uint32) {
	now := time.Now()
	a.mu.Lock()
	c, ok := a.users[uid]
	a.mu.Unlock()
	if ok && now.Sub(c.at) < userCacheTTL {
		return c.name, c.groups
	}
	c = cachedUser{at: now}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		c.name = u.Username
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if g, err := strconv.ParseUint(s, 10, 32); err == nil {
					c.groups = append(c.groups, uint32(g))
				}
			}
		}
	}
	a.mu.Lock()
	if len(a.users) > 4096 {
		clear(a.users)
	}
	a.users[uid] = c
	a.mu.Unlock()
	return c.name, c.groups
}

// peer is a LUXI call's author and whether it may make administrative
// calls. A call whose peer is unknown (not a Unix socket) is nobody's and
// not an administrator's.
func (a *authz) peer(ctx context.Context) (author.Actor, bool) {
	p, ok := luxi.PeerFromContext(ctx)
	if !ok {
		return author.Actor{Source: author.SourceLUXI, Who: "unknown peer"}, false
	}
	// The groups are the user's in the user database and those the
	// peer's process holds (the kernel's SO_PEERGROUPS): a member of the
	// admin group by either counts.
	name, groups := a.user(p.UID)
	groups = append(slices.Clip(groups), p.Groups...)
	return author.LUXIUser(p.UID, name), a.policy.Admin(author.Cred{UID: p.UID, GID: p.GID, Groups: groups})
}

// audit writes the audit log line (author.Audit).
func audit(log *slog.Logger, who author.Actor, action, target, result string) {
	author.Audit(log, who, action, target, result)
}

// auditTarget is what a LUXI call's arguments name, shortened for the
// log.
func auditTarget(args json.RawMessage) string {
	s := string(args)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// resultOf is an audit line's result for a call's outcome.
func resultOf(err error) string {
	if err != nil {
		return "failed: " + err.Error()
	}
	return "ok"
}

// authorize refuses an administrative LUXI call to a peer who may not make
// it, and otherwise returns a function that writes its audit line with
// the call's outcome (nil for other calls).
func (n *nodeRT) authorize(method string, args json.RawMessage, who author.Actor, admin bool) (done func(error), err error) {
	if !author.AdminCall(method, args) {
		return nil, nil
	}
	target := auditTarget(args)
	if !admin {
		err := luxi.NewError("OpPrereqError", n.auth.policy.Refusal(method, who, n.auth.groupName), "environment_error")
		audit(n.log, who, method, target, "refused: not an administrator")
		return nil, err
	}
	return func(err error) { audit(n.log, who, method, target, resultOf(err)) }, nil
}
