package pgstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// sessionTimeout is the timeouts, in milliseconds, of the pools of the
// tests below. They bound the session before LockGraph's first statement
// turns them off too: its connection's start-up and that statement, in
// real time. A second leaves them room on a loaded machine (with 50 ms,
// a CI-like load ended the session, idle between its start-up and the
// first statement, or that statement, a few times in 40 runs).
const sessionTimeout = "1000"

// A host whose role or pool sets statement_timeout or lock_timeout, as
// many do to bound their queries, got an error from LockGraph once the
// timeout passed (SQLSTATE 57014 or 55P03), where it waits until the
// lock is free or its context ends. The lock's connection is its own,
// never back in the pool: LockGraph turns both timeouts off on it before
// it waits. Here the holder keeps the lock for five times the timeout.
func TestLockGraphWaitsPastTheSessionsTimeouts(t *testing.T) {
	t.Parallel() // its own schema
	for _, param := range []string{"statement_timeout", "lock_timeout"} {
		t.Run(param, func(t *testing.T) {
			t.Parallel() // its own schema
			s, pg := newStore(t)
			ctx := testenv.Context(t, 30*time.Second)
			ts := poolStore(t, pg.Schema, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams[param] = sessionTimeout })
			key := testenv.UniqueName(t)
			held, err := s.LockGraph(ctx, key)
			require.NoError(t, err)
			time.AfterFunc(5*time.Second, func() { _ = held.Unlock(ctx) })
			l, err := ts.LockGraph(ctx, key)
			require.NoError(t, err, "LockGraph gave up before the lock was free")
			require.NoError(t, l.Check(ctx), "the lock's statements after the wait")
			require.NoError(t, l.Unlock(ctx))
		})
	}
}

// A role or a pool that sets idle_session_timeout (Postgres 14 and later)
// had the server end the lock's session once it sat idle that long, which
// it does for the whole run it guards: the lock was lost, and Guard
// cancelled the run, a timeout into every run. The lock's connection is
// its own, never back in the pool: LockGraph and TryLockGraph turn it off
// on it. Here the lock is held for five times the timeout.
func TestGraphLockOutlivesTheSessionsIdleTimeout(t *testing.T) {
	t.Parallel() // its own schema
	for _, wait := range []bool{true, false} {
		t.Run(fmt.Sprintf("wait=%v", wait), func(t *testing.T) {
			t.Parallel() // its own schema
			_, pg := newStore(t)
			ctx := testenv.Context(t, 30*time.Second)
			s := poolStore(t, pg.Schema, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["idle_session_timeout"] = sessionTimeout })
			lock := s.TryLockGraph
			if wait {
				lock = s.LockGraph
			}
			l, err := lock(ctx, testenv.UniqueName(t))
			require.NoError(t, err)
			select {
			case <-l.Lost():
				t.Fatal("the lock was lost while its session sat idle")
			case <-time.After(5 * time.Second):
			}
			require.NoError(t, l.Check(ctx), "the lock after its session sat idle")
			require.NoError(t, l.Unlock(ctx))
		})
	}
}

// TryLockGraph turns the timeouts off only once it has the lock: a
// refusal gives the pool its connection back as it was.
func TestTryLockGraphRefusedKeepsThePoolsTimeouts(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL())
	require.NoError(t, err)
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams["idle_session_timeout"] = "60000"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	ts, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	key := testenv.UniqueName(t)
	held, err := s.LockGraph(ctx, key)
	require.NoError(t, err)
	defer func() { require.NoError(t, held.Unlock(ctx)) }()
	_, err = ts.TryLockGraph(ctx, key)
	require.ErrorIs(t, err, pgstore.ErrGraphLocked)
	var v string
	require.NoError(t, pool.QueryRow(ctx, `SHOW idle_session_timeout`).Scan(&v))
	require.Equal(t, "1min", v, "the pool's connection after a refused TryLockGraph")
}
