package sinktest

import (
	"testing"
	"time"
)

// SetWait makes d the kit's bound on each wait (see wait) until t ends.
// t's subtests may run in parallel; t itself must not.
func SetWait(t testing.TB, d time.Duration) {
	old := wait
	wait = d
	t.Cleanup(func() { wait = old })
}
