package pgstore_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
)

// A host whose role or pool sets statement_timeout or lock_timeout, as
// many do to bound their queries, got an error from LockGraph once the
// timeout passed (SQLSTATE 57014 or 55P03), where it waits until the
// lock is free or its context ends. The lock's connection is its own,
// never back in the pool: LockGraph turns both timeouts off on it before
// it waits. Here the holder keeps the lock for ten times the timeout.
func TestLockGraphWaitsPastTheSessionsTimeouts(t *testing.T) {
	t.Parallel() // its own schema
	for _, param := range []string{"statement_timeout", "lock_timeout"} {
		t.Run(param, func(t *testing.T) {
			t.Parallel() // its own schema
			s, pg := newStore(t)
			ctx := testenv.Context(t, 30*time.Second)
			ts := poolStore(t, pg.Schema, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams[param] = "50" })
			key := testenv.UniqueName(t)
			held, err := s.LockGraph(ctx, key)
			require.NoError(t, err)
			time.AfterFunc(500*time.Millisecond, func() { _ = held.Unlock(ctx) })
			l, err := ts.LockGraph(ctx, key)
			require.NoError(t, err, "LockGraph gave up before the lock was free")
			require.NoError(t, l.Check(ctx), "the lock's statements after the wait")
			require.NoError(t, l.Unlock(ctx))
		})
	}
}
