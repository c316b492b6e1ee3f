package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// A re-take that began with a read that timed out (TCP keepalives giving
// up on a dead network), not with the server's end of the session, and
// that an Unlock (the host's, or Hold's at the run's end) or a Check's
// ctx stopped, left the ended connection open: Unlock then sent
// pg_advisory_unlock on it, which on a dead network waited for its ctx
// (Hold's 10 s bound) and gave an unlock error, not ErrLockLost. A
// stopped re-take now closes the ended connection, and they say
// ErrLockLost at once.
func TestRetakeStoppedAfterAReadTimeoutClosesTheEndedConnection(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	for _, tc := range []struct {
		name   string
		by     func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, release chan struct{})
		status executor.RunStatus
	}{
		{"Unlock", func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, release chan struct{}) {
			uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			require.ErrorIs(t, lock.Unlock(uctx), pgstore.ErrLockLost, "Unlock during the re-take")
		}, executor.RunCancelled},
		{"run's end", func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, release chan struct{}) {
			close(release)
		}, executor.RunSucceeded},
		{"Check", func(t *testing.T, ctx context.Context, lock *pgstore.GraphLock, release chan struct{}) {
			cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			err := lock.Check(cctx) // waits for the re-take, until cctx ends
			require.ErrorIs(t, err, pgstore.ErrLockLost)
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}, executor.RunCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testenv.Context(t, 60*time.Second)
			cfg := pg.Pool.Config()
			cfg.MaxConns = 1
			proxy := testenv.CutPostgres(t, cfg)
			dialed := noteDials(cfg)
			ls, pool := storeOn(t, pg, cfg)
			key, lock, r, _, release := retakeRun(t, ctx, s, ls)
			pgstore.SetUnlockTimeout(lock, 5*time.Second) // Hold's bound, shorter
			old := lockConn(t, dialed)
			held := retakeUnderWay(t, ctx, lock, r, pool, func() {
				proxy.Silence() // the network goes dead, the server's session on
				require.NoError(t, old.SetReadDeadline(time.Unix(1, 0)), "the read times out")
			})

			tc.by(t, ctx, lock, release)
			require.ErrorIs(t, receive(t, ctx, held), pgstore.ErrLockLost, "Hold's error")
			rep, _ := r.Wait()
			assert.Equal(t, tc.status, rep.Record.Status)
			assert.True(t, old.closed.Load(), "the ended connection is closed")
			// The server sees the connection closed and frees the key.
			awaitLockSessions(t, ctx, pg.Pool, s.GraphLockKey(key), true, 0)
		})
	}
}
