// Package systemd speaks the sd_notify protocol without libsystemd: a
// datagram of newline-separated KEY=VALUE assignments ("READY=1",
// "WATCHDOG=1", "RELOADING=1", "STOPPING=1", "STATUS=...") written to the
// AF_UNIX socket named by $NOTIFY_SOCKET (a leading "@" is an abstract
// socket). The watchdog interval comes from $WATCHDOG_USEC when
// $WATCHDOG_PID is unset or this process's PID.
//
// Reference: sd_notify(3), systemd.service(5) Type=notify and WatchdogSec=.
//
// It must never fail the program when systemd is absent: without
// NOTIFY_SOCKET every call is a no-op. It must never send WATCHDOG=1 for a
// process that is not healthy, since the watchdog exists to restart it.
package systemd
