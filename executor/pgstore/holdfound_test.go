package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// A session end after the held run's end that the watcher did not see (it
// was stopped, as by a Check or an Unlock under way) but that a Check of
// the host's or Hold's unlock found made Hold's channel say ErrLockLost,
// even when a Check begun after the run's end had found the lock held, so
// that the end came after the run's for certain: the run was under the
// lock to its end, and a host that alarms on it did so for nothing. When
// the lock was so found held after the run's end, a session end found
// later by Check or by the unlock (the server's message, or the
// connection closed by the other end) now makes Hold's channel say nil,
// as one the watcher sees does. Without that Check, the session may have
// ended during the run, and Hold's channel still says ErrLockLost.
func TestHoldOfALockFoundLostAfterTheRunsEnd(t *testing.T) {
	t.Parallel() // its own schemas
	for _, tc := range []struct {
		name    string
		confirm bool // a Check after the run's end finds the lock held
		// find finds the session's end, the watcher stopped.
		find func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock)
	}{
		{name: "by Check", confirm: true, find: findByCheck},
		{name: "by Check after a stopped read", confirm: true, find: findByCheckAfterARead},
		{name: "by the unlock after a stopped read", confirm: true, find: findByTheUnlock},
		{name: "by the host's Unlock after a stopped read", confirm: true, find: findByTheHostsUnlock},
		{name: "by Check, unconfirmed", find: findByCheck},
		{name: "by Check after a stopped read, unconfirmed", find: findByCheckAfterARead},
		{name: "by the unlock after a stopped read, unconfirmed", find: findByTheUnlock},
		{name: "by the host's Unlock after a stopped read, unconfirmed", find: findByTheHostsUnlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pg, ctx, key, lock, r, release := heldRun(t)
			held, goOn := holdScheduledLate(t, lock, r, release)
			if tc.confirm {
				require.NoError(t, lock.Check(ctx), "held after the run's end")
			}
			pgstore.StopWatching(lock) // as by a Check or an Unlock under way
			endLockSession(t, ctx, pg, s, key)
			awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
			tc.find(t, ctx, lock)
			goOn()
			err := receive(t, ctx, held)
			if tc.confirm {
				require.NoError(t, err, "the lock was held after the run's end")
			} else {
				require.ErrorIs(t, err, pgstore.ErrLockLost, "the session may have ended during the run")
			}
		})
	}
}

// findByCheck has a Check of the host's find the session ended.
func findByCheck(t *testing.T, ctx context.Context, lock *pgstore.GraphLock) {
	t.Helper()
	require.ErrorIs(t, lock.Check(ctx), pgstore.ErrLockLost)
}

// findByCheckAfterARead has the stopped watcher's read find the session
// ended, and then a Check of the host's.
func findByCheckAfterARead(t *testing.T, ctx context.Context, lock *pgstore.GraphLock) {
	t.Helper()
	require.Error(t, pgstore.ReadStopped(ctx, lock))
	require.ErrorIs(t, lock.Check(ctx), pgstore.ErrLockLost)
}

// findByTheUnlock has the stopped watcher's read find the session ended,
// and leaves it to Hold's unlock.
func findByTheUnlock(t *testing.T, ctx context.Context, lock *pgstore.GraphLock) {
	t.Helper()
	require.Error(t, pgstore.ReadStopped(ctx, lock))
}

// findByTheHostsUnlock has the stopped watcher's read find the session
// ended, and then an Unlock of the host's, before Hold's.
func findByTheHostsUnlock(t *testing.T, ctx context.Context, lock *pgstore.GraphLock) {
	t.Helper()
	require.Error(t, pgstore.ReadStopped(ctx, lock))
	require.ErrorIs(t, lock.Unlock(ctx), pgstore.ErrLockLost, "the host's Unlock says the lock was lost")
}
