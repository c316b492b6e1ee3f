//go:build !race

package sse_test

// raceEnabled says that the race detector, which makes each delivery
// many times slower, is on: the load checks then use fewer clients.
const raceEnabled = false
