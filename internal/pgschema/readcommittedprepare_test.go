package pgschema_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/internal/testenv"
)

// TestReadCommittedEndedWhilePreparing ends the context of a
// ReadCommitted while pgx prepares its statement, in the modes that
// describe a statement before they send the batch (a new connection's
// statement cache is empty): the Parse waits for the table that a
// migration, say, locks, and pgx closes the connection, as when the
// statement runs. But nothing of the batch was sent, so nothing can be
// committed: the error is the context's cause, as when ctx is done
// before the batch is sent, not an *InDoubtError that says the statement
// may have been committed, and that would have the adapters' callers put
// again for nothing.
func TestReadCommittedEndedWhilePreparing(t *testing.T) {
	t.Parallel() // its own schema
	pg := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 60*time.Second)
	table, stored := kvTable(t, ctx, pg, "(1, 'old')")
	app := pg.Schema
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			pool := appPool(t, ctx, app, func(cfg *pgxpool.Config) { cfg.ConnConfig.DefaultQueryExecMode = mode })

			blocker, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = blocker.Rollback(context.Background()) }()
			_, err = blocker.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE")
			require.NoError(t, err)
			var pid int
			require.NoError(t, blocker.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))

			cause := errors.New("the host gave up")
			cctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			res := make(chan error, 1)
			go func() {
				res <- pgschema.ReadCommitted(cctx, pool, "UPDATE "+table+" SET v = $1 WHERE k = 1", []any{"new"},
					func(r pgx.BatchResults) error {
						_, err := r.Exec()
						return err
					})
			}()
			pg.WaitBlockedBy(t, ctx, pid, res)
			cancel(cause)
			err = <-res
			require.NoError(t, blocker.Rollback(ctx))
			pg.WaitIdle(t, ctx, app)

			require.ErrorIs(t, err, cause)
			var d *pgschema.InDoubtError
			assert.False(t, errors.As(err, &d), "nothing of the batch was sent: %v", err)
			assert.Equal(t, "old", stored())
		})
	}
}
