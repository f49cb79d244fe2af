// Package devicestest holds the connection-level fakes the device drivers'
// unit tests use, in the style of periph.io's conntest: Playback replays a
// byte transcript and fails when the driver did not make the exchanges it
// should have; Record wraps a real connection and writes the transcript a
// Playback can replay; Events is a Publisher that records events and lets a
// test wait for them with a deadline instead of sleeping.
//
// It must never be imported by non-test code of the drivers.
package devicestest
