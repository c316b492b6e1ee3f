package pgstore_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	ls, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	ctx := testenv.Context(t, 60*time.Second)
	key, lock, r, _, _ := retakeRun(t, ctx, s, ls)
	busy, err := pool.Acquire(ctx) // the pool's one connection: the re-take waits for it
	require.NoError(t, err)
	defer busy.Release()
	saw := make(chan struct{})
	pgstore.WatcherSaw(lock, func() { close(saw) })
	waiting := make(chan struct{})
	pgstore.CheckWaits(lock, func() { close(waiting) })
	held := lock.HoldFor(r, pgstore.HoldOptions{Retake: time.Hour, Logger: slog.New(slog.DiscardHandler)})

	endLockSession(t, ctx, pg, s, key)
	<-saw
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
