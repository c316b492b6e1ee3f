package pgstore_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// A host that runs several runs in turn under one lock (a run queued
// after another takes the lock over, as examples/service does) cannot
// use HoldFor, which unlocks at the run's end, and had only Guard, which
// cancels at once: a Postgres restart cancelled its runs with lock-lost.
// GuardFor with a Retake takes the key's lock again on a new session,
// the run goes on, and the lock stays held after the run's end, for the
// host to unlock.
func TestGuardForRetakesTheLockOfAnEndedSession(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key, lock, r, _, release := retakeRun(t, ctx, s, s)
	saw := make(chan struct{})
	pgstore.WatcherSaw(lock, func() { close(saw) })
	require.NoError(t, lock.GuardFor(r, pgstore.HoldOptions{Retake: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)}))
	lockKey := s.GraphLockKey(key)
	ended := lockHolder(t, pg.Pool, lockKey)
	require.NotZero(t, ended, "the lock's session")

	endLockSession(t, ctx, pg, s, key)
	<-saw
	require.NoError(t, lock.Check(ctx), "Check waits for the re-take: the new session holds the lock")
	assert.NotContains(t, []int32{0, ended}, lockHolder(t, pg.Pool, lockKey), "the session holding the lock")
	close(release)
	rep, err := r.Wait()
	require.NoError(t, err, "the run goes on under the re-taken lock")
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	require.NoError(t, lock.Check(ctx), "the lock is held after the run's end, until the host unlocks it")
	select {
	case <-lock.Lost():
		t.Error("Lost was closed")
	default:
	}
	require.NoError(t, lock.Unlock(ctx))
	assert.Zero(t, lockHolder(t, pg.Pool, lockKey), "freed by Unlock")
}

// GuardFor refuses a negative Retake, guarding nothing.
func TestGuardForRefusesANegativeRetake(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	_, lock, r, _, release := retakeRun(t, ctx, s, s)
	err := lock.GuardFor(r, pgstore.HoldOptions{Retake: -time.Second})
	var he *pgstore.HoldOptionsError
	require.ErrorAs(t, err, &he)
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.Equal(t, "Retake", he.Field)
	close(release)
	_, err = r.Wait()
	require.NoError(t, err)
	require.NoError(t, lock.Unlock(ctx))
}
