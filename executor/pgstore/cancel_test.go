package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/pgschema"
)

// A host may have pgx cancel a statement whose context ends with a
// cancel request to the server, which keeps the connection, rather than
// by closing the connection (pgx's default): pgconn's
// CancelRequestContextWatcherHandler. The server then answers "canceling
// statement due to user request" (SQLSTATE 57014), which carries no
// context error. Before, the store returned that bare driver error, so a
// caller that branched on ctx.Err() (errors.Is(err,
// context.DeadlineExceeded)) took it for a failure of the database (a
// Migrate waiting for another's lock too); now
// the error wraps ctx.Err() too, as with pgx's default, and the
// connection goes back to the pool clean.
//
// Each call's context ends once its statement waits for the lock that
// the test holds (context.Canceled, which the store wraps as it does
// DeadlineExceeded). A context that ended sooner, as a 200 ms timeout did
// on a loaded machine, could send its cancel request while the server had
// not read the statement yet: the server drops a cancel request that
// finds no statement running, the statement then waited for the lock
// until pgx gave up on the connection (DeadlineDelay, 30 s later), and
// ran once the test let the lock go. The call's error was right (it may
// or may not have been applied, as with a lost connection), but the test,
// which checks that nothing changed, failed (Put's "h2").
func TestCancelRequestGivesContextError(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	cfg := pg.Pool.Config()
	cfg.MaxConns = 2
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 30 * time.Second}
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	cs, err := pgstore.New(pool, pgstore.Options{Schema: s.Schema()})
	require.NoError(t, err)

	ctx := t.Context()
	st := dirty.State{Status: dirty.StatusClean, Rev: 1}
	_, err = s.Commit(ctx, "g", 0, []executor.Change{{ID: "script", State: st}})
	require.NoError(t, err)
	_, err = s.Put(ctx, "a", executor.Asset{Hash: "h"})
	require.NoError(t, err)
	rec := executor.Record{ID: "r", GraphKey: "other", Status: executor.RunRunning}
	require.NoError(t, s.PutRun(ctx, rec))

	for _, tc := range []struct {
		name string
		lock string // what another transaction holds, {s} the schema
		call func(ctx context.Context) error
	}{
		{"Commit", `SELECT 1 FROM {s}.graphs WHERE graph_key = 'g' FOR UPDATE`, func(ctx context.Context) error {
			_, err := cs.Commit(ctx, "g", 1, []executor.Change{{ID: "script", State: dirty.State{Rev: 2}}})
			return err
		}},
		{"DeleteGraph", `SELECT 1 FROM {s}.graphs WHERE graph_key = 'g' FOR UPDATE`, func(ctx context.Context) error {
			_, err := cs.DeleteGraph(ctx, "g")
			return err
		}},
		{"Put", `SELECT 1 FROM {s}.assets WHERE key = 'a' FOR UPDATE`, func(ctx context.Context) error {
			_, err := cs.Put(ctx, "a", executor.Asset{Hash: "h2"})
			return err
		}},
		{"PutRun", `SELECT 1 FROM {s}.runs WHERE id = 'r' FOR UPDATE`, func(ctx context.Context) error {
			r := rec
			r.Status = executor.RunSucceeded
			return cs.PutRun(ctx, r)
		}},
		{"Migrate", `SELECT pg_advisory_xact_lock(` + fmt.Sprint(pgschema.MigrateLockKey(s.Schema())) + `)`,
			func(ctx context.Context) error { return cs.Migrate(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(context.Background()) //nolint:errcheck // rolled back below
			_, err = tx.Exec(ctx, strings.ReplaceAll(tc.lock, "{s}", `"`+s.Schema()+`"`))
			require.NoError(t, err)
			var pid int
			require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
			callCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tc.call(callCtx) }()
			pg.WaitBlockedBy(t, ctx, pid, done)
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
			require.NoError(t, tx.Rollback(ctx))
		})
	}

	// Nothing changed, and the pool's connections work.
	snap, err := cs.Load(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, executor.Snapshot{Version: 1, States: map[string]dirty.State{"script": st}}, snap)
	a, err := cs.Get(ctx, pgstore.RefPrefix+"a")
	require.NoError(t, err)
	assert.Equal(t, "h", a.Hash)
	got, err := cs.GetRun(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, executor.RunRunning, got.Status)
	v, err := cs.Commit(ctx, "g", 1, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(2), v)
}
