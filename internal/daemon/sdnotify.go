package daemon

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// NotifySocketEnv names the service manager's notification socket
// (sd_notify(3)); systemd sets it for Type=notify services.
const NotifySocketEnv = "NOTIFY_SOCKET"

// Notify tells the service manager about the daemon's state, as
// sd_notify(3) does: state (e.g. "READY=1", "STOPPING=1", "STATUS=...",
// several separated by newlines) is sent as one datagram to the unix socket
// named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
// Without $NOTIFY_SOCKET, Notify does nothing and returns false.
func Notify(state string) (sent bool, err error) {
	name := os.Getenv(NotifySocketEnv)
	if name == "" {
		return false, nil
	}
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "@") {
		return false, fmt.Errorf("$%s=%q is not a unix socket path", NotifySocketEnv, name)
	}
	// Go maps a leading "@" to the abstract namespace.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("cannot reach the service manager at $%s: %w", NotifySocketEnv, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("cannot notify the service manager: %w", err)
	}
	return true, nil
}
