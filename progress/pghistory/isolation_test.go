package pghistory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/sinktest"
)

// Appends of one run from several processes at once are safe: one that
// waits for the run's row, which another append renews, goes on with the
// row that append committed, in READ COMMITTED. Append, one statement, ran
// in the session's default level, so that on a role or a database that
// defaults to a stricter one (default_transaction_isolation = 'repeatable
// read' or 'serializable') it failed with "could not serialize access due
// to concurrent update" (SQLSTATE 40001), and its events were not stored.
// Now it runs in a READ COMMITTED transaction of its own, whatever the
// default, still in one round trip.
func TestAppendUnderAStricterDefaultIsolation(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		for _, level := range []string{"repeatable read", "serializable"} {
			t.Run(fmt.Sprintf("%v/%s", mode, level), func(t *testing.T) {
				t.Parallel() // each has its own schema
				h, pg := newHistory(t, mode, pghistory.Options{}, func(c *pgxpool.Config) {
					c.ConnConfig.RuntimeParams["default_transaction_isolation"] = level
				})
				ctx := testenv.Context(t, 30*time.Second)
				run := sinktest.RunID(t)
				require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 2)...))

				// Another append of the run, from another process, holds its row.
				holder, err := pg.Pool.Begin(ctx)
				require.NoError(t, err)
				defer holder.Rollback(ctx) //nolint:errcheck // committed below
				_, err = holder.Exec(ctx, "UPDATE "+pgx.Identifier{pg.Schema, "progress_runs"}.Sanitize()+
					" SET last_at = now() WHERE run_id = $1", run)
				require.NoError(t, err)
				var holderPID int
				require.NoError(t, holder.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&holderPID))
				done := make(chan error, 1)
				go func() { done <- h.Append(ctx, sinktest.Events(run, 3, 4)...) }()
				for { // until the append waits for the holder
					var n int
					require.NoError(t, pg.Pool.QueryRow(ctx,
						"SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", holderPID).Scan(&n))
					if n > 0 {
						break
					}
					require.NoError(t, ctx.Err(), "the append does not wait")
					time.Sleep(5 * time.Millisecond) // polling the server, bounded by ctx
				}
				require.NoError(t, holder.Commit(ctx))
				require.NoError(t, <-done)
				assert.Equal(t, []uint64{1, 2, 3, 4}, sinktest.Seqs(replay(t, h, run, 0)))
			})
		}
	}
}
