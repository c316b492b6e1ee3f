package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// Hold's Unlock at its run's end waits for the lock's mutex while a Check
// or an Unlock of the host's holds it (a Check on a slow network takes as
// long as its ctx allows). Its bound (10 s) started before that wait, so
// a Hold that waited got less than the documented bound for the unlock
// itself, or none: it delivered context.DeadlineExceeded, and left the
// lock to the server's keepalives, though the server would have answered
// at once. The bound now starts once Hold has the mutex.
func TestHoldsUnlockBoundStartsOnceItHasTheLock(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, release := heldRun(t)
	const bound = 2 * time.Second
	pgstore.SetUnlockTimeout(lock, bound)

	held := lock.Hold(r)
	done := pgstore.Busy(lock) // a Check of the host's under way
	close(release)
	_, err := r.Wait()
	require.NoError(t, err)
	// Hold's unlock waits for the Check longer than its own bound. (Not a
	// timing assertion: the longer the wait, the surer the old code fails;
	// the unlock itself has the whole bound.)
	time.Sleep(bound + bound/2)
	done()
	require.NoError(t, receive(t, ctx, held), "the unlock once the Check is over")
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "the server freed the lock")
}
