package pgstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// logBuffer is a slog handler's writer that tests read while the lock's
// watcher writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// retakeRun starts a run of a new key on s, under the key's lock taken
// with lockStore (s, or a store of the same schema on another pool), and
// returns once a video of it is being made: its videos wait until release
// is closed or the run is cancelled. The lock is not held for the run yet.
func retakeRun(t *testing.T, ctx context.Context, s, lockStore *pgstore.Store) (key string, lock *pgstore.GraphLock,
	r *executor.Run, p *provider, release chan struct{}) {
	t.Helper()
	key = testenv.UniqueName(t)
	p = newProvider()
	var started chan struct{}
	started, release = p.holdKind(graph.KindVideo)
	e := newExecutor(t, s, p.registry())
	lock, err := lockStore.LockGraph(ctx, key)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lock.Unlock(context.Background()) }) // a test that failed early
	r, err = e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: build(t, 30)})
	require.NoError(t, err)
	<-started
	return key, lock, r, p, release
}

// storeOn returns a store of pg's schema on a pool of its own, made
// with cfg (pg's pool's, changed), closed when the test ends, and that
// pool.
func storeOn(t *testing.T, pg *testenv.Postgres, cfg *pgxpool.Config) (*pgstore.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	return s, pool
}

// retakeUnderWay holds lock for r with HoldFor and an hour's Retake,
// takes pool's one connection (the lock's store's, given back when the
// test ends) so that a re-take waits for it, calls end to end the lock's
// session, and returns HoldFor's channel once the watcher has found the
// end: the re-take is under way.
func retakeUnderWay(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, r *executor.Run,
	pool *pgxpool.Pool, end func()) <-chan error {
	t.Helper()
	busy, err := pool.Acquire(ctx) // the pool's one connection: the re-take waits for it
	require.NoError(t, err)
	t.Cleanup(busy.Release)
	saw := make(chan struct{})
	pgstore.WatcherSaw(lock, func() { close(saw) })
	held := lock.HoldFor(r, pgstore.HoldOptions{Retake: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	end()
	<-saw
	return held
}

// lockHolder returns the server session that holds the lock of key, or
// 0.
func lockHolder(t *testing.T, pool *pgxpool.Pool, key int64) int32 {
	t.Helper()
	var pids []int32
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT ARRAY(SELECT pid FROM pg_catalog.pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1)`,
		key).Scan(&pids))
	require.LessOrEqual(t, len(pids), 1, "sessions holding the lock")
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}

// A Postgres blip (a restart, a failover, a cut connection) ends the
// session of every graph lock: Hold cancelled each run under one at once,
// with lock-lost, its paid calls under way cut, though the executor's
// StoreRetry was set to ride the outage out (the Harbor Learning trial's
// finding, B1). HoldFor with a Retake takes the key's lock again on a new
// session: the run goes on, its call under way uncut, Lost stays open,
// and the channel says nil once the new session's lock is freed at the
// run's end.
func TestHoldForRetakesTheLockOfAnEndedSession(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ends := []struct {
		name string
		// lockStore returns the store that takes the lock, and end ends
		// its lock's session.
		lockStore func(t *testing.T) (*pgstore.Store, func(t *testing.T, ctx context.Context, key string))
	}{
		{"terminated", func(t *testing.T) (*pgstore.Store, func(*testing.T, context.Context, string)) {
			return s, func(t *testing.T, ctx context.Context, key string) { endLockSession(t, ctx, pg, s, key) }
		}},
		{"cut", func(t *testing.T) (*pgstore.Store, func(*testing.T, context.Context, string)) {
			cfg := pg.Pool.Config()
			proxy := testenv.CutPostgres(t, cfg)
			ls, _ := storeOn(t, pg, cfg)
			return ls, func(*testing.T, context.Context, string) { proxy.Cut() }
		}},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testenv.Context(t, 60*time.Second)
			ls, end := tc.lockStore(t)
			key, lock, r, p, release := retakeRun(t, ctx, s, ls)
			logs := &logBuffer{}
			saw := make(chan struct{})
			pgstore.WatcherSaw(lock, func() { close(saw) })
			held := lock.HoldFor(r, pgstore.HoldOptions{Retake: 30 * time.Second,
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			lockKey := s.GraphLockKey(key)
			ended := lockHolder(t, pg.Pool, lockKey)
			require.NotZero(t, ended, "the lock's session")

			end(t, ctx, key)
			<-saw // the watcher found the session ended
			require.NoError(t, lock.Check(ctx), "Check waits for the re-take: the new session holds the lock")
			assert.NotContains(t, []int32{0, ended}, lockHolder(t, pg.Pool, lockKey), "the session holding the lock")
			select {
			case <-lock.Lost():
				t.Fatal("Lost was closed, though the lock was re-taken")
			case <-r.Done():
				t.Fatal("the run ended, though the lock was re-taken")
			default:
			}
			_, err := s.TryLockGraph(ctx, key)
			require.ErrorIs(t, err, pgstore.ErrGraphLocked, "another session, while the run goes on")

			close(release)
			rep, err := r.Wait()
			require.NoError(t, err, "the run goes on under the re-taken lock")
			assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
			p.mu.Lock()
			for id, n := range p.calls {
				assert.Equal(t, 1, n, "calls of %s: the call under way was not cut", id)
			}
			p.mu.Unlock()
			require.NoError(t, receive(t, ctx, held), "the unlock of the re-taken lock at the run's end")
			assert.Zero(t, lockSessions(t, pg.Pool, lockKey, true), "the new session's lock is freed")
			select {
			case <-lock.Lost():
				t.Error("Lost was closed")
			default:
			}
			assert.Contains(t, logs.String(), "re-taken")
		})
	}
}

// A re-take that finds the key held by another session (another process
// took it in the window, and may be resuming the run) cancels the run
// with lock-lost, as Hold does at once, and the channel says ErrLockLost.
func TestHoldForRetakeOfAKeyTakenMeanwhileCancels(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key, lock, r, _, _ := retakeRun(t, ctx, s, s)
	// The other process takes the key once the server has freed it,
	// before the watcher tries to re-take it.
	var other *pgstore.GraphLock
	var otherErr error
	pgstore.WatcherSaw(lock, func() { other, otherErr = s.LockGraph(ctx, key) })
	held := lock.HoldFor(r, pgstore.HoldOptions{Retake: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)})

	endLockSession(t, ctx, pg, s, key)
	err := receive(t, ctx, held)
	require.NoError(t, otherErr, "the other session's lock")
	defer func() { require.NoError(t, other.Unlock(ctx)) }()
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Hold's error")
	assert.Contains(t, err.Error(), "held by another session")
	rep, err := r.Wait()
	require.ErrorIs(t, err, pgstore.ErrLockLost, "the run's cause")
	assert.Equal(t, executor.RunCancelled, rep.Record.Status)
	assert.Equal(t, pgstore.CancelledByLockLost, rep.Record.CancelledBy)
	select {
	case <-lock.Lost():
	default:
		t.Error("Lost is open after a failed re-take")
	}
	require.NoError(t, other.Check(ctx), "the other session keeps the key")
}

// A re-take that gets no connection within Retake (the server refuses
// them, or the pool has none to give) cancels the run with lock-lost.
func TestHoldForRetakeThatOutlastsRetakeCancels(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	cfg := pg.Pool.Config()
	cfg.MaxConns = 1
	ls, pool := storeOn(t, pg, cfg)
	key, lock, r, _, _ := retakeRun(t, ctx, s, ls)
	busy, err := pool.Acquire(ctx) // the pool's one connection: the re-take waits for it
	require.NoError(t, err)
	defer busy.Release()
	held := lock.HoldFor(r, pgstore.HoldOptions{Retake: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})

	endLockSession(t, ctx, pg, s, key)
	err = receive(t, ctx, held)
	require.ErrorIs(t, err, pgstore.ErrLockLost, "Hold's error")
	assert.Contains(t, err.Error(), "re-take failed for 300ms")
	rep, err := r.Wait()
	require.ErrorIs(t, err, pgstore.ErrLockLost, "the run's cause")
	assert.Equal(t, pgstore.CancelledByLockLost, rep.Record.CancelledBy)
	assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "nothing holds the key")
}

// A negative Retake is refused at once, on the channel, with a typed
// error; the run is neither guarded nor its lock unlocked.
func TestHoldForRefusesANegativeRetake(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key, lock, r, _, release := retakeRun(t, ctx, s, s)
	err := receive(t, ctx, lock.HoldFor(r, pgstore.HoldOptions{Retake: -time.Second}))
	var oe *pgstore.HoldOptionsError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "Retake", oe.Field)
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "-1s")
	assert.Equal(t, 1, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "the lock is still held")

	held := lock.Hold(r) // the lock is not claimed by the refused HoldFor
	close(release)
	_, err = r.Wait()
	require.NoError(t, err)
	require.NoError(t, receive(t, ctx, held))
}

// A re-take under way ends when the run does (Hold's unlock stops it) or
// when the ctx of a host's Check, which waits for it, ends: the lock was
// not held to the run's end, or is not held, and they say so with
// ErrLockLost; Check's closes Lost, which cancels the run. Neither waits
// for Retake.
func TestHoldForRetakeUnderWayEnds(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	cfg := pg.Pool.Config()
	cfg.MaxConns = 1
	ls, pool := storeOn(t, pg, cfg)
	for _, tc := range []struct {
		name   string
		by     func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, release chan struct{})
		status executor.RunStatus
	}{
		{"run's end", func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, release chan struct{}) {
			close(release)
		}, executor.RunSucceeded},
		{"Check", func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, release chan struct{}) {
			cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			err := lock.Check(cctx) // waits for the re-take, until cctx ends
			require.ErrorIs(t, err, pgstore.ErrLockLost)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			select {
			case <-lock.Lost():
			default:
				t.Error("Lost is open after Check found the lock lost")
			}
		}, executor.RunCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testenv.Context(t, 60*time.Second)
			key, lock, r, _, release := retakeRun(t, ctx, s, ls)
			held := retakeUnderWay(t, ctx, lock, r, pool, func() { endLockSession(t, ctx, pg, s, key) })
			tc.by(t, ctx, lock, release)
			err := receive(t, ctx, held)
			require.ErrorIs(t, err, pgstore.ErrLockLost, "Hold's error")
			rep, _ := r.Wait()
			assert.Equal(t, tc.status, rep.Record.Status)
			assert.Zero(t, lockSessions(t, pg.Pool, s.GraphLockKey(key), true), "nothing holds the key")
		})
	}
}
