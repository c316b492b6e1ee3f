package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// Hold's channel says ErrLockLost when the lock was lost before its run's
// end: the run may have overlapped another process's. It said so too when
// the lock's session ended after the run's end, before Hold's unlock (the
// unlock waiting behind a Check of the host's, or Hold's goroutine not yet
// scheduled, or its select taking Lost when both were ready): the run had
// ended under the lock and nothing was lost, but a host that alarms on it
// alarmed, or ran the key again. When a Check of the host's, begun after
// the run's end, has found the lock held, a session end that the watcher
// sees later is after the run's end for certain: the server freed the lock
// with the session, and Hold says nil. Without such a Check, the server's
// message may have been sent during the run and read only after its end,
// and Hold still says ErrLockLost; so it does for a session that ended
// unseen (the watcher stopped), found only by the unlock.
func TestHoldOfALockLostAfterTheRunsEnd(t *testing.T) {
	t.Parallel() // its own schemas
	t.Run("seen by the watcher after a Check", func(t *testing.T) {
		s, pg, ctx, key, lock, r, release := heldRun(t)
		held, goOn := holdScheduledLate(t, lock, r, release)
		require.NoError(t, lock.Check(ctx), "held after the run's end")
		endLockSession(t, ctx, pg, s, key)
		select {
		case <-lock.Lost():
		case <-ctx.Done():
			t.Fatal("the watcher did not see the session end")
		}
		goOn()
		require.NoError(t, receive(t, ctx, held), "the lock was held to the run's end")
		// The server frees the lock as the session ends, a moment after
		// its message.
		awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
	})
	t.Run("seen by the watcher without a Check", func(t *testing.T) {
		s, pg, ctx, key, lock, r, release := heldRun(t)
		held := lock.Hold(r)
		done := pgstore.Busy(lock) // Hold's unlock waits, as behind a Check begun during the run
		defer done()
		close(release)
		_, err := r.Wait()
		require.NoError(t, err)
		endLockSession(t, ctx, pg, s, key)
		select {
		case <-lock.Lost():
		case <-ctx.Done():
			t.Fatal("the watcher did not see the session end")
		}
		done()
		require.ErrorIs(t, receive(t, ctx, held), pgstore.ErrLockLost, "the session may have ended during the run")
		awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
	})
	t.Run("unseen before the end", func(t *testing.T) {
		s, pg, ctx, key, lock, r, release := heldRun(t)
		held := lock.Hold(r)
		pgstore.StopWatching(lock)
		endLockSession(t, ctx, pg, s, key)
		awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
		close(release)
		_, err := r.Wait()
		require.NoError(t, err, "no watcher saw the loss: nothing cancelled the run")
		require.ErrorIs(t, receive(t, ctx, held), pgstore.ErrLockLost, "the session may have ended during the run")
	})
}
