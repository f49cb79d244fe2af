//go:build race

package storetest

// raceEnabled shrinks the big randomized tests under the race detector,
// which slows the pure-Go SQLite tenfold.
const raceEnabled = true
