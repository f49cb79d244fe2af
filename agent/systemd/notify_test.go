package systemd_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/systemd"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func read(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadyDatagramReachesTheSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listen(t, path)
	n := systemd.FromEnv(env(map[string]string{"NOTIFY_SOCKET": path}))
	if err := n.Ready("serving on\n127.0.0.1:7700"); err != nil {
		t.Fatal(err)
	}
	if got, want := read(t, conn), "READY=1\nSTATUS=serving on 127.0.0.1:7700"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	n.Reloading()
	if got := read(t, conn); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reloading: got %q", got)
	}
	n.Stopping("bye")
	if got := read(t, conn); got != "STOPPING=1\nSTATUS=bye" {
		t.Errorf("stopping: got %q", got)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := "@tillpoint-test-" + strconv.Itoa(os.Getpid())
	conn := listen(t, name)
	if err := systemd.FromEnv(env(map[string]string{"NOTIFY_SOCKET": name})).Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, conn); got != "READY=1" {
		t.Errorf("got %q", got)
	}
}

func TestWithoutSystemdNothingHappens(t *testing.T) {
	n := systemd.FromEnv(env(nil))
	if n.Enabled() || n.Notify("READY=1") != nil || n.WatchdogInterval() != 0 {
		t.Errorf("got an active notifier without NOTIFY_SOCKET")
	}
	var nilN *systemd.Notifier
	if nilN.Notify("READY=1") != nil {
		t.Errorf("nil notifier: got an error")
	}
}

func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listen(t, path)
	n := systemd.FromEnv(env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000", "WATCHDOG_PID": strconv.Itoa(os.Getpid())}))
	if n.WatchdogInterval() != 40*time.Millisecond {
		t.Fatalf("interval: got %s, want 40ms", n.WatchdogInterval())
	}
	healthy := make(chan bool, 1)
	healthy <- true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(ctx, func() bool {
			select {
			case h := <-healthy:
				return h
			default:
				return false
			}
		})
	}()
	if got := read(t, conn); got != "WATCHDOG=1" {
		t.Errorf("got %q, want WATCHDOG=1", got)
	}
	// Unhealthy from now on: no more pings.
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 64)); err == nil {
		t.Errorf("got a ping while unhealthy")
	}
	cancel()
	<-done

	other := systemd.FromEnv(env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000", "WATCHDOG_PID": "1"}))
	if other.WatchdogInterval() != 0 {
		t.Errorf("watchdog meant for another PID: got interval %s, want 0", other.WatchdogInterval())
	}
}
