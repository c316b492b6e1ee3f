package executor

import (
	"context"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// A wait that gives up leaves nothing behind: before, each kept its
// channel until nothing was in flight, so a host that retried Close with
// short contexts while runs went on piled them up. A wait still waiting
// is woken as before.
func TestTallyWaitThatGivesUpLeavesNothing(t *testing.T) {
	var tl tally
	tl.add()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 1000 {
		require.ErrorIs(t, tl.wait(done), context.Canceled)
	}
	tl.mu.Lock()
	left := len(tl.waiters)
	tl.mu.Unlock()
	require.Zero(t, left, "channels of waits that gave up")

	woken := make(chan error)
	go func() { woken <- tl.wait(context.Background()) }()
	for {
		tl.mu.Lock()
		n := len(tl.waiters)
		tl.mu.Unlock()
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	tl.done()
	require.NoError(t, <-woken)
	require.NoError(t, tl.wait(done), "nothing in flight")
}
