package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// heldRun starts a run of a new key under the key's lock, on a store of
// its own schema, and returns once a video of it is being made: its
// videos wait until release is closed or the run is cancelled. The lock
// is neither guarding the run nor held for it yet.
func heldRun(t *testing.T) (s *pgstore.Store, pg *testenv.Postgres, ctx context.Context, key string,
	lock *pgstore.GraphLock, r *executor.Run, release chan struct{}) {
	t.Helper()
	s, pg = newStore(t)
	ctx = testenv.Context(t, 60*time.Second)
	key = testenv.UniqueName(t)
	p := newProvider()
	var started chan struct{}
	started, release = p.holdKind(graph.KindVideo)
	e := newExecutor(t, s, p.registry())
	lock, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lock.Unlock(context.Background()) }) // a test that failed early
	r, err = e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: build(t, 30)})
	require.NoError(t, err)
	<-started
	return s, pg, ctx, key, lock, r, release
}

// holdScheduledLate has lock hold r (of heldRun) with Hold's goroutine
// scheduled late: once r has ended, Hold waits to release the lock until
// goOn is called (or the test ends). It then lets r end, closing
// release, and waits for it.
func holdScheduledLate(t *testing.T, lock *pgstore.GraphLock, r *executor.Run, release chan struct{}) (held <-chan error, goOn func()) {
	t.Helper()
	late := make(chan struct{})
	goOn = sync.OnceFunc(func() { close(late) })
	t.Cleanup(goOn) // a test that failed early
	pgstore.BeforeRelease(lock, func() { <-late })
	held = lock.Hold(r)
	close(release)
	_, err := r.Wait()
	require.NoError(t, err)
	return held, goOn
}

// receive returns what held delivers, and checks that it is then
// closed.
func receive(t *testing.T, ctx context.Context, held <-chan error) error {
	t.Helper()
	var err error
	select {
	case err = <-held:
	case <-ctx.Done():
		t.Fatal("Hold delivered nothing")
	}
	select {
	case _, open := <-held:
		assert.False(t, open, "Hold's channel delivers once, then is closed")
	case <-ctx.Done():
		t.Fatal("Hold's channel was not closed after its error")
	}
	return err
}

// Guard cancels a run whose lock is lost, but does not unlock the lock
// when the run ends: every host wrote the same goroutine (wait for the
// run, Unlock with a bounded context, look for ErrLockLost). Hold does
// it: while the run goes on the key is locked, and once the run has
// ended the lock is freed, with no Unlock of the host's, and Hold's
// channel says nil.
func TestHoldUnlocksOnceTheRunHasEnded(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, release := heldRun(t)
	s2, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)

	held := lock.Hold(r)
	_, err := s2.TryLockGraph(ctx, key)
	require.ErrorIs(t, err, pgstore.ErrGraphLocked, "while the held run goes on")
	select {
	case err := <-held:
		t.Fatalf("Hold delivered %v before the run ended", err)
	default:
	}

	close(release)
	rep, err := r.Wait()
	require.NoError(t, err)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	require.NoError(t, receive(t, ctx, held), "the unlock at the run's end")
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "the lock is freed once Hold delivers")
	l2, err := s2.TryLockGraph(ctx, key)
	require.NoError(t, err, "another process locks the key once the run has ended, with no Unlock")
	require.NoError(t, l2.Unlock(ctx))
	select {
	case <-lock.Lost():
		t.Error("Hold's unlock closed Lost")
	default:
	}
	require.NoError(t, lock.Unlock(ctx), "an Unlock after Hold's does nothing")
}

// A lock lost while the held run goes on (the server ended its session)
// cancels the run, as Guard does, with the loss as its cause, and Hold's
// channel says so: an error wrapping ErrLockLost, once the run has ended.
func TestHoldOfALostLockCancelsTheRunAndSaysSo(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, _ := heldRun(t)

	held := lock.Hold(r)
	endLockSession(t, ctx, pg, s, key)
	err := receive(t, ctx, held)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Hold's error")
	assert.Contains(t, err.Error(), "another session may hold it now")
	select {
	case <-r.Done():
	default:
		t.Fatal("Hold delivered before the run ended")
	}
	rep, err := r.Wait()
	require.ErrorIs(t, err, executor.ErrCancelled)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "the run's cause")
	assert.Equal(t, executor.RunCancelled, rep.Record.Status)
	require.ErrorIs(t, lock.Check(ctx), pgstore.ErrLockLost, "Check after Hold's unlock")
	require.NoError(t, lock.Unlock(ctx), "an Unlock after Hold's does nothing")
}

// A lock holds for one run: a second Hold (of the same run or another)
// is refused at once, on its channel, with a *HoldError that names the
// run the lock is held for, and neither guards its run nor unlocks
// anything; the first Hold goes on. A Hold after Unlock is refused at
// once too, with an error wrapping ErrLockLost (the run is not under
// the lock), and cancels nothing. A nil run panics in the caller, as
// Guard's does.
func TestHoldTwiceOrAfterUnlockIsRefused(t *testing.T) {
	t.Parallel() // its own schema
	s, pg, ctx, key, lock, r, release := heldRun(t)

	held := lock.Hold(r)
	err := receive(t, ctx, lock.Hold(r))
	var he *pgstore.HoldError
	require.ErrorAs(t, err, &he, "a second Hold")
	assert.Equal(t, pgstore.HoldError{GraphKey: key, RunID: r.ID()}, *he)
	assert.EqualError(t, err, `pgstore: GraphLock.Hold: the lock of graph "`+key+`" is held for run "`+r.ID()+
		`" already, and is unlocked when that run ends: take a lock of its own for each run`)
	select {
	case <-r.Done():
		t.Fatal("the refused Hold ended the run")
	default:
	}
	assert.Equal(t, 1, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "the refused Hold unlocked nothing")
	assert.PanicsWithValue(t, "pgstore: GraphLock.Hold with a nil run", func() { lock.Hold(nil) })
	close(release)
	require.NoError(t, receive(t, ctx, held), "the first Hold")

	// After Unlock.
	l2, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	require.NoError(t, l2.Unlock(ctx))
	err = receive(t, ctx, l2.Hold(r))
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Hold after Unlock")
	assert.Contains(t, err.Error(), "was unlocked")
}

// An Unlock of the host's before the held run's end frees the lock while
// the run goes on (it does not cancel the run, as under Guard): the run
// was not under the lock to its end, and another process may have taken
// the key meanwhile, so Hold's channel says ErrLockLost rather than the
// nil of the second Unlock.
func TestHoldAfterAnEarlyUnlockSaysLost(t *testing.T) {
	t.Parallel() // its own schema
	_, _, ctx, _, lock, r, release := heldRun(t)

	held := lock.Hold(r)
	require.NoError(t, lock.Unlock(ctx))
	select {
	case err := <-held:
		t.Fatalf("Hold delivered %v before the run ended", err)
	default:
	}
	close(release)
	rep, err := r.Wait()
	require.NoError(t, err, "the early Unlock cancels nothing")
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	err = receive(t, ctx, held)
	require.ErrorIs(t, err, pgstore.ErrLockLost)
	assert.Contains(t, err.Error(), "unlocked before run "+`"`+r.ID()+`"`+" ended")
}
