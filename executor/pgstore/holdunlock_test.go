package pgstore_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// An Unlock of the host's after the held run's end (a host that unlocks
// once Wait returns, as without Hold) that came before Hold's own unlock
// made Hold's channel say ErrLockLost, "unlocked before run ... ended,
// which went on without it", though the run had ended under the lock.
// Hold's channel now says nil then: it unlocks nothing, and the host's
// Unlock said how its unlock went. An Unlock before the run's end still
// says ErrLockLost (TestHoldAfterAnEarlyUnlockSaysLost).
func TestHoldAfterAnUnlockAtTheRunsEnd(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, release := heldRun(t)
	late := make(chan struct{})
	goOn := sync.OnceFunc(func() { close(late) })
	t.Cleanup(goOn)                                // a test that failed early
	pgstore.BeforeRelease(lock, func() { <-late }) // Hold's goroutine is scheduled late
	held := lock.Hold(r)
	close(release)
	_, err := r.Wait()
	require.NoError(t, err)
	require.NoError(t, lock.Unlock(ctx), "the host's Unlock once the run has ended")
	goOn()
	require.NoError(t, receive(t, ctx, held), "the run was under the lock to its end")
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true))
}
