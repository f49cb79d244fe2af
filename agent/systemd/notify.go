package systemd

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to the service manager. The zero Notifier
// (and a nil one) does nothing.
type Notifier struct {
	socket   string
	watchdog time.Duration
}

// FromEnv returns a Notifier for the environment read through getenv.
func FromEnv(getenv func(string) string) *Notifier {
	n := &Notifier{socket: getenv("NOTIFY_SOCKET")}
	if usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		pid := getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	return n
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval is the watchdog timeout, 0 when none is set.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Notify sends state, e.g. "READY=1" or "STOPPING=1\nSTATUS=draining".
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if strings.HasPrefix(n.socket, "@") {
		addr.Name = "\x00" + n.socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sd_notify: dial %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: send: %w", err)
	}
	return nil
}

// Ready tells the manager the service is up, with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1\nSTATUS=" + oneLine(status))
}

// Reloading tells the manager a reload started; call Ready when it is done.
func (n *Notifier) Reloading() error {
	var ts unixTimespec
	monotonic(&ts)
	return n.Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.usec()))
}

// Stopping tells the manager the service is shutting down.
func (n *Notifier) Stopping(status string) error {
	return n.Notify("STOPPING=1\nSTATUS=" + oneLine(status))
}

// RunWatchdog sends WATCHDOG=1 at half the watchdog interval while healthy
// reports true, until ctx ends. Without a watchdog it returns at once.
func (n *Notifier) RunWatchdog(ctx context.Context, healthy func() bool) {
	d := n.WatchdogInterval()
	if !n.Enabled() || d <= 0 {
		return
	}
	t := time.NewTicker(d / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy() {
				n.Notify("WATCHDOG=1")
			}
		}
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
