package pghistory_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress/pghistory"
)

// A service replica that starts while another process migrates the
// schema, or while a write holds a table that Migrate must lock to
// change the layout, waits for it in Migrate. With statement_timeout or
// lock_timeout set for the role or the pool, as hosts set them to bound
// their queries, that wait ended once the timeout passed (SQLSTATE 57014
// or 55P03), and the replica failed its start-up. Migrate turns them off
// for its own transaction only: here a holder keeps the migration lock,
// or progress_runs (whose index Migrate makes again), for three times the
// timeout; Migrate must wait and succeed, and the pool's connection, its
// only one, keeps the pool's timeout afterwards.
func TestMigrateWaitsPastTheSessionsTimeouts(t *testing.T) {
	t.Parallel() // each case has its own schema
	for _, param := range []string{"statement_timeout", "lock_timeout"} {
		for _, held := range []string{"the migration lock", "progress_runs"} {
			t.Run(param+"/"+held, func(t *testing.T) {
				t.Parallel() // its own schema
				_, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
				ctx := testenv.Context(t, 30*time.Second)
				holder, err := pg.Pool.Begin(ctx)
				require.NoError(t, err)
				defer holder.Rollback(context.Background()) //nolint:errcheck // rolled back below
				if held == "progress_runs" {
					_, err = pg.Pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{pg.Schema, "progress_runs_last_at"}.Sanitize())
					require.NoError(t, err)
					_, err = holder.Exec(ctx, "LOCK TABLE "+pgx.Identifier{pg.Schema, "progress_runs"}.Sanitize()+" IN ROW EXCLUSIVE MODE")
				} else {
					_, err = holder.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgschema.MigrateLockKey(pg.Schema))
				}
				require.NoError(t, err)

				pool, app := pg.TimedPool(t, param)
				h, err := pghistory.New(pool, pghistory.Options{Schema: pg.Schema})
				require.NoError(t, err)
				pg.RequireWaitsPastTimeout(t, ctx, app, held, func() error { return h.Migrate(ctx) },
					func() error { return holder.Rollback(ctx) })
				var v string
				require.NoError(t, pool.QueryRow(ctx, "SHOW "+param).Scan(&v))
				require.Equal(t, testenv.TimedPoolTimeout, v, "the pool's connection after Migrate")
			})
		}
	}
}
