//go:build !linux

package systemd

import "time"

type unixTimespec struct{ t time.Duration }

var start = time.Now()

func monotonic(ts *unixTimespec) { ts.t = time.Since(start) }

func (ts *unixTimespec) usec() int64 { return ts.t.Microseconds() }
