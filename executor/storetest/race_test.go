//go:build race

package storetest_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = true
