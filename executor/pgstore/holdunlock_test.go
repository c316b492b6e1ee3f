package pgstore_test

import (
	"context"
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
	held, goOn := holdScheduledLate(t, lock, r, release)
	require.NoError(t, lock.Unlock(ctx), "the host's Unlock once the run has ended")
	goOn()
	require.NoError(t, receive(t, ctx, held), "the run was under the lock to its end")
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true))
}

// An Unlock of the host's after the held run's end that failed (its ctx
// was done: it sent nothing, and only closed the connection, the server
// freeing the lock once it sees it closed) made Hold's channel say nil,
// which says that the server has freed the lock, so that a host that
// ignored its own Unlock's error (as a deferred Unlock does) and trusted
// the channel took the key for free when the server may not have freed
// it yet. Hold's channel now delivers that Unlock's error.
func TestHoldAfterAFailedUnlockAtTheRunsEnd(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, release := heldRun(t)
	held, goOn := holdScheduledLate(t, lock, r, release)
	done, cancel := context.WithCancel(ctx)
	cancel()
	unlockErr := lock.Unlock(done)
	require.ErrorIs(t, unlockErr, context.Canceled, "the host's Unlock with a done ctx")
	require.NotErrorIs(t, unlockErr, pgstore.ErrLockLost)
	goOn()
	err := receive(t, ctx, held)
	require.ErrorIs(t, err, context.Canceled, "the host's Unlock failed: the server may not have freed the lock yet")
	assert.Equal(t, unlockErr.Error(), err.Error())
	// The server frees the lock once it sees the connection closed.
	awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
}
