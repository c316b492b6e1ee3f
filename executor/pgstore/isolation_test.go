package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// The store's writes are meant to run in READ COMMITTED: a write that
// waited for a row another transaction held goes on with the row that
// transaction committed (an upsert updates it, a prune checks its age
// again). Commit and DeleteGraph begin their transactions so; Put, PutRun
// and PruneAssets, single statements, ran in the session's default, so
// that on a role or a database that defaults to a stricter level (ALTER
// ROLE ... SET default_transaction_isolation = 'repeatable read', as some
// hosts do) a Put of a key that another Put had just renewed, say, failed
// with "could not serialize access due to concurrent update" (SQLSTATE
// 40001). Now each runs in a READ COMMITTED transaction of its own,
// whatever the default, still in one round trip.
func TestWritesUnderAStricterDefaultIsolation(t *testing.T) {
	t.Parallel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		for _, level := range []string{"repeatable read", "serializable"} {
			t.Run(fmt.Sprintf("%v/%s", mode, level), func(t *testing.T) {
				t.Parallel() // each has its own schema
				s, pg := newStore(t)
				cfg := pg.Pool.Config()
				cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = level
				cfg.ConnConfig.DefaultQueryExecMode = mode
				pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
				require.NoError(t, err)
				t.Cleanup(pool.Close)
				strict, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
				require.NoError(t, err)

				ctx := testenv.Context(t, 30*time.Second)
				_, err = s.Put(ctx, "a", executor.Asset{Hash: "h"})
				require.NoError(t, err)
				old, err := s.Put(ctx, "old", executor.Asset{Hash: "h"})
				require.NoError(t, err)
				age(t, pg, "old")
				rec := executor.Record{ID: "r", GraphKey: "g", Status: executor.RunRunning}
				require.NoError(t, s.PutRun(ctx, rec))

				for _, tc := range []struct {
					name   string
					holder string // a write that the call waits for, {s} the schema
					call   func() error
					check  func()
				}{
					{"Put", `UPDATE {s}.assets SET hash = 'other' WHERE key = 'a'`, func() error {
						_, err := strict.Put(ctx, "a", executor.Asset{Hash: "h2"})
						return err
					}, func() {
						a, err := s.Get(ctx, pgstore.RefPrefix+"a")
						require.NoError(t, err)
						assert.Equal(t, "h2", a.Hash)
					}},
					{"PutRun", `UPDATE {s}.runs SET error = 'other' WHERE id = 'r'`, func() error {
						r := rec
						r.Status = executor.RunSucceeded
						return strict.PutRun(ctx, r)
					}, func() {
						r, err := s.GetRun(ctx, "r")
						require.NoError(t, err)
						assert.Equal(t, executor.RunSucceeded, r.Status)
						assert.Empty(t, r.Error)
					}},
					{"PruneAssets", `UPDATE {s}.assets SET url = url WHERE key = 'old'`, func() error {
						n, err := strict.PruneAssets(ctx, time.Hour)
						assert.Equal(t, int64(1), n)
						return err
					}, func() {
						assert.Equal(t, []bool{false}, exists(t, s, old), "the old asset, still old")
					}},
				} {
					holder, err := pg.Pool.Begin(ctx)
					require.NoError(t, err)
					_, err = holder.Exec(ctx, strings.ReplaceAll(tc.holder, "{s}", `"`+pg.Schema+`"`))
					require.NoError(t, err)
					var holderPID int
					require.NoError(t, holder.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&holderPID))
					done := make(chan error, 1)
					go func() { done <- tc.call() }()
					waitFor(t, ctx, pg, holderPID)
					require.NoError(t, holder.Commit(ctx))
					if assert.NoError(t, <-done, tc.name) {
						tc.check()
					}
				}
			})
		}
	}
}

// waitFor waits until a statement waits for the backend pid.
func waitFor(t *testing.T, ctx context.Context, pg *testenv.Postgres, pid int) {
	t.Helper()
	for {
		var n int
		require.NoError(t, pg.Pool.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid).Scan(&n))
		if n > 0 {
			return
		}
		require.NoError(t, ctx.Err(), "nothing waits for backend %d", pid)
		time.Sleep(5 * time.Millisecond) // polling the server, bounded by ctx
	}
}

// PruneRuns, a write too, was left out: a single statement in the
// session's default level, so that on a role or a database that defaults
// to a stricter one, a prune that took its snapshot before a write of a
// record committed, and locked the record after, failed with "could not
// serialize access due to concurrent update" (SQLSTATE 40001) at that
// record, instead of checking its age again. (The test widens that
// moment, short in production: the writer's transaction also holds the
// table, which the prune, its snapshot taken, waits for.) Now each batch
// runs in a READ COMMITTED transaction of its own, as PruneAssets's do.
func TestPruneRunsUnderAStricterDefaultIsolation(t *testing.T) {
	t.Parallel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		for _, level := range []string{"repeatable read", "serializable"} {
			t.Run(fmt.Sprintf("%v/%s", mode, level), func(t *testing.T) {
				t.Parallel() // each has its own schema
				s, pg := newStore(t)
				cfg := pg.Pool.Config()
				cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = level
				cfg.ConnConfig.DefaultQueryExecMode = mode
				cfg.MaxConns = 1 // its statements prepared, below
				pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
				require.NoError(t, err)
				t.Cleanup(pool.Close)
				strict, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
				require.NoError(t, err)

				ctx := testenv.Context(t, 30*time.Second)
				// A prune of nothing prepares the statement on the pool's
				// connection, as at every prune but a process's first: the
				// next one then takes its snapshot before it waits for the
				// table.
				_, err = strict.PruneRuns(ctx, time.Hour)
				require.NoError(t, err)
				long := time.Now().Add(-2 * time.Hour)
				for _, id := range []string{"old", "rewritten"} {
					require.NoError(t, s.PutRun(ctx, executor.Record{ID: id, GraphKey: "g",
						Status: executor.RunSucceeded, StartedAt: long, EndedAt: long}))
				}
				// A write of "rewritten" that keeps it old, in a transaction
				// that holds the table until it commits.
				holder, err := pg.Pool.Begin(ctx)
				require.NoError(t, err)
				defer holder.Rollback(context.Background()) //nolint:errcheck // committed below
				_, err = holder.Exec(ctx, strings.ReplaceAll(`UPDATE {s}.runs SET error = 'other' WHERE id = 'rewritten';
LOCK TABLE {s}.runs IN SHARE MODE`, "{s}", `"`+pg.Schema+`"`))
				require.NoError(t, err)
				var holderPID int
				require.NoError(t, holder.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&holderPID))
				type pruned struct {
					n   int64
					err error
				}
				done := make(chan pruned, 1)
				go func() {
					n, err := strict.PruneRuns(ctx, time.Hour)
					done <- pruned{n, err}
				}()
				waitFor(t, ctx, pg, holderPID)
				require.NoError(t, holder.Commit(ctx))
				got := <-done
				require.NoError(t, got.err)
				assert.Equal(t, int64(2), got.n, "both records, still old")
				for _, id := range []string{"old", "rewritten"} {
					_, err := s.GetRun(ctx, id)
					require.ErrorIs(t, err, executor.ErrNotFound, id)
				}
			})
		}
	}
}
