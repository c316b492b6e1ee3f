package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// A Check that waited for a re-take under way held the lock's mutex
// while it waited, up to its ctx or Retake (30 s, say): a host's Unlock
// (at its shutdown) and Hold's unlock at the run's end waited for it,
// whatever their ctx, though HoldFor says that either ends the re-take
// at once. Check now waits without the mutex: an Unlock during its wait
// ends the re-take, and Check then says the lock was unlocked.
func TestUnlockDuringACheckThatWaitsForARetake(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	cfg := pg.Pool.Config()
	cfg.MaxConns = 1
	ls, pool := storeOn(t, pg, cfg)
	ctx := testenv.Context(t, 60*time.Second)
	key, lock, r, _, _ := retakeRun(t, ctx, s, ls)
	waiting := make(chan struct{})
	pgstore.CheckWaits(lock, func() { close(waiting) })
	held := retakeUnderWay(t, ctx, lock, r, pool, func() { endLockSession(t, ctx, pg, s, key) })
	checked := make(chan error, 1)
	go func() { checked <- lock.Check(ctx) }() // waits for the re-take, within ctx
	<-waiting
	unlocked := make(chan error, 1)
	go func() { unlocked <- lock.Unlock(ctx) }()
	wait := testenv.Context(t, 10*time.Second)
	select {
	case err := <-unlocked:
		require.ErrorIs(t, err, pgstore.ErrLockLost, "Unlock during a re-take")
	case <-wait.Done():
		t.Fatal("Unlock waited for the Check that waits for the re-take")
	}
	require.ErrorIs(t, <-checked, pgstore.ErrLockLost, "Check, once the lock was unlocked")
	require.ErrorIs(t, receive(t, ctx, held), pgstore.ErrLockLost, "Hold's error")
	rep, _ := r.Wait()
	assert.Equal(t, executor.RunCancelled, rep.Record.Status)
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "nothing holds the key")
}
