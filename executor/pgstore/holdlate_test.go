package pgstore_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// A lock's session that ended during its run, as the run ended by itself:
// the watcher's read found the session ended, but before it recorded the
// loss the run had ended, and the watcher took the loss for one after the
// run's end, so Hold's channel said nil for a run that was not under the
// lock to its end (another process may have run the key beside it). The
// watcher now takes a loss for one after the run's end only when its read
// began after a Check that the server answered after the run's end; here
// Hold's channel says ErrLockLost.
func TestHoldOfALockLostAsItsRunEnds(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, release := heldRun(t)
	saw := make(chan struct{})
	goOn := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(goOn) })
	t.Cleanup(unblock) // a test that failed early
	pgstore.WatcherSaw(lock, sync.OnceFunc(func() { close(saw); <-goOn }))
	held := lock.Hold(r)
	endLockSession(t, ctx, pg, s, key) // during the run
	select {
	case <-saw:
	case <-ctx.Done():
		t.Fatal("the watcher did not see the session end")
	}
	close(release) // the run ends by itself, before the watcher records the loss
	_, err := r.Wait()
	require.NoError(t, err)
	unblock()
	require.ErrorIs(t, receive(t, ctx, held), pgstore.ErrLockLost, "the session ended during the run")
	awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
}
