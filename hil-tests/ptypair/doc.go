// Package ptypair makes a connected pair of pseudo-terminals with socat, the
// way a serial scanner or printer cable looks to the program under test:
//
//	socat pty,raw,echo=0,link=DIR/a pty,raw,echo=0,link=DIR/b
//
// A test opens one end as the device (writing scans, answering status) and
// hands the other path to the driver, which opens it with go.bug.st/serial
// as it would a real port. Stop is an unplug (the driver's reads fail and
// the paths vanish); Start again with the same paths is a replug.
//
// It must never be used outside tests and tools: it runs socat.
package ptypair
