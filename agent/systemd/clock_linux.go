package systemd

import "golang.org/x/sys/unix"

type unixTimespec struct{ unix.Timespec }

func monotonic(ts *unixTimespec) { unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts.Timespec) }

func (ts *unixTimespec) usec() int64 { return ts.Sec*1e6 + ts.Nsec/1e3 }
