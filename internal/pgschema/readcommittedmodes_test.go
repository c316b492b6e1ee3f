package pgschema_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/internal/testenv"
)

// TestReadCommittedModes ends the context of a ReadCommitted whose
// statement waits for a row lock, on pools that send statements in each
// of pgx's modes, and on one whose connections cancel a statement with a
// cancel request of their own (pgconn.CancelRequestContextWatcherHandler,
// which keeps the connection): the statement is never committed once the
// wait ends; the error says that ctx ended (an *InDoubtError, or the
// server's cancel, 57014, which says that the transaction failed); and
// the pool's connections go back to it out of any transaction, so that
// the next call commits its own statement alone. A context done before
// the call has no effect, and is no InDoubtError.
func TestReadCommittedModes(t *testing.T) {
	t.Parallel() // its own schema
	pg := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 60*time.Second)
	table, stored := kvTable(t, ctx, pg, "")
	app := pg.Schema
	for _, tc := range []struct {
		name      string
		mode      pgx.QueryExecMode
		cancelReq bool
	}{
		{"cache statement", pgx.QueryExecModeCacheStatement, false},
		{"cache describe", pgx.QueryExecModeCacheDescribe, false},
		{"describe exec", pgx.QueryExecModeDescribeExec, false},
		{"exec", pgx.QueryExecModeExec, false},
		{"simple protocol", pgx.QueryExecModeSimpleProtocol, false},
		{"cancel request handler", pgx.QueryExecModeCacheStatement, true},
		{"cancel request handler, simple protocol", pgx.QueryExecModeSimpleProtocol, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := appPool(t, ctx, app, func(cfg *pgxpool.Config) {
				cfg.MaxConns = 1 // the next call reuses the connection, if it was kept
				cfg.ConnConfig.DefaultQueryExecMode = tc.mode
				if tc.cancelReq {
					cfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
						return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 20 * time.Second}
					}
				}
			})
			set := func(ctx context.Context, v string) error {
				return pgschema.ReadCommitted(ctx, pool, "UPDATE "+table+" SET v = $1 WHERE k = 1", []any{v},
					func(r pgx.BatchResults) error {
						tag, err := r.Exec()
						if err == nil && tag.RowsAffected() != 1 {
							err = errors.New("updated " + tag.String())
						}
						return err
					})
			}
			_, err := pg.Pool.Exec(ctx, "INSERT INTO "+table+" VALUES (1, 'old') ON CONFLICT (k) DO UPDATE SET v = 'old'")
			require.NoError(t, err)

			done, cancelDone := context.WithCancel(ctx)
			cancelDone()
			err = set(done, "done before")
			require.ErrorIs(t, err, context.Canceled)
			var d *pgschema.InDoubtError
			assert.False(t, errors.As(err, &d), "a context done before the call: %v", err)

			blocker, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = blocker.Rollback(context.Background()) }()
			_, err = blocker.Exec(ctx, "SELECT 1 FROM "+table+" WHERE k = 1 FOR UPDATE")
			require.NoError(t, err)
			var pid int
			require.NoError(t, blocker.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))

			cause := errors.New("the host gave up")
			cctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			res := make(chan error, 1)
			go func() { res <- set(cctx, "cancelled") }()
			pg.WaitBlockedBy(t, ctx, pid, res)
			cancel(cause)
			err = <-res
			require.NoError(t, blocker.Rollback(ctx)) // the wait ends
			pg.WaitIdle(t, ctx, app)
			require.Error(t, err)
			var pe *pgconn.PgError
			if errors.As(err, &d) {
				assert.True(t, d.Ended)
				assert.ErrorIs(t, err, cause)
				assert.NoError(t, d.Cancel)
			} else {
				require.ErrorAs(t, err, &pe, "neither in doubt nor the server's: %v", err)
				assert.Equal(t, "57014", pe.Code)
			}
			assert.Equal(t, "old", stored(), "the statement was committed after ReadCommitted returned")

			// The next call commits its own statement, on a connection in
			// no transaction.
			require.NoError(t, set(ctx, "next"))
			assert.Equal(t, "next", stored())
			assert.Zero(t, pool.Stat().AcquiredConns())
			conn, err := pool.Acquire(ctx)
			require.NoError(t, err)
			assert.Equal(t, byte('I'), conn.Conn().PgConn().TxStatus())
			conn.Release()
		})
	}
}
