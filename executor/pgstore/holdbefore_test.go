package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// Hold of a run that ended before Hold was called unlocks at once, and
// says nil; Hold of a lock lost before it was called (seen by the
// watcher, or by Check) cancels the run with the loss as its cause, and
// says ErrLockLost. (Pins; they passed before.)
func TestHoldOfARunEndedOrALockLostBeforeHold(t *testing.T) {
	t.Parallel() // its own schemas
	t.Run("a run ended before Hold", func(t *testing.T) {
		s, pg, ctx, key, lock, r, release := heldRun(t)
		close(release)
		_, err := r.Wait()
		require.NoError(t, err)
		require.NoError(t, receive(t, ctx, lock.Hold(r)))
		assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true))
	})
	t.Run("a lock lost before Hold", func(t *testing.T) {
		s, pg, ctx, key, lock, r, _ := heldRun(t)
		endLockSession(t, ctx, pg, s, key)
		select {
		case <-lock.Lost():
		case <-ctx.Done():
			t.Fatal("never lost")
		}
		err := receive(t, ctx, lock.Hold(r))
		require.ErrorIs(t, err, pgstore.ErrLockLost)
		_, err = r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		require.ErrorIs(t, err, pgstore.ErrLockLost)
	})
	t.Run("a lock found lost by Check before Hold", func(t *testing.T) {
		s, pg, ctx, key, lock, r, _ := heldRun(t)
		endLockSession(t, ctx, pg, s, key)
		require.ErrorIs(t, lock.Check(ctx), pgstore.ErrLockLost)
		err := receive(t, ctx, lock.Hold(r))
		require.ErrorIs(t, err, pgstore.ErrLockLost)
		_, err = r.Wait()
		require.ErrorIs(t, err, pgstore.ErrLockLost)
	})
}
