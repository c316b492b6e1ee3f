package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// Hold of a run that had ended already, beside an Unlock of the host's
// after that end: Hold noted the run's ID before the run itself, so an
// Unlock in between saw a lock held for a run it could not ask about,
// took the unlock for one before the run's end, and Hold's channel said
// ErrLockLost ("unlocked before run ... ended"), though the run had ended
// under the lock. The ID and the run are now noted at once: the Unlock
// sees both or neither, and Hold's channel says nil.
func TestHoldOfAnEndedRunBesideAnUnlock(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, release := heldRun(t)
	close(release)
	_, err := r.Wait()
	require.NoError(t, err)
	pgstore.AfterClaim(lock, func() {
		require.NoError(t, lock.Unlock(ctx), "the host's Unlock once the run has ended")
	})
	require.NoError(t, receive(t, ctx, lock.Hold(r)), "the run was under the lock to its end")
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true))
}
