package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// applySocketGroup gives group (Options.SocketGroup; "" does nothing) the
// node's LUXI socket, the directories leading to it inside the data
// directory (DIR and DIR/socket, so that members can reach it) and every
// extra --luxi-socket. Modes stay as they are: 0660 sockets, 0750
// directories. A group that does not exist is logged and skipped; failing
// to change the group is an error for root and a warning for other users
// (who may only give files to their own groups).
func applySocketGroup(group, dataDir string, sockets []string, log *slog.Logger) error {
	if group == "" {
		return nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			log.Warn("the socket group does not exist: only the socket's owner can use it", "group", group)
			return nil
		}
		return fmt.Errorf("cannot look up the socket group %q: %w", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return fmt.Errorf("socket group %q has a non-numeric id %q", group, g.Gid)
	}
	paths := append([]string{dataDir, filepath.Dir(SocketPath(dataDir))}, sockets...)
	for _, p := range paths {
		if err := os.Lchown(p, -1, gid); err != nil {
			if os.Geteuid() != 0 && errors.Is(err, fs.ErrPermission) {
				log.Warn("cannot give the socket to its group (not root, not a member)", "group", group, "path", p)
				return nil
			}
			return fmt.Errorf("cannot give %s to the socket group %q: %w", p, group, err)
		}
	}
	log.Debug("sockets given to their group", "group", group, "paths", paths)
	return nil
}
