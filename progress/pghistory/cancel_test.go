package pghistory_test

import (
	"context"
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

// insertUncommitted begins a transaction that inserts an event of run
// and does not commit it, so that an Append of the run waits for it
// (a Lock wait, on the unnest of its statement). The transaction is
// rolled back when the test ends, if the test has not ended it.
func insertUncommitted(t *testing.T, ctx context.Context, pg *testenv.Postgres, run string) pgx.Tx {
	t.Helper()
	blocker, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = blocker.Rollback(context.Background()) })
	_, err = blocker.Exec(ctx, "INSERT INTO "+pgx.Identifier{pg.Schema, "progress_events"}.Sanitize()+
		" (run_id, seq, event) VALUES ($1, 1, '\\x7b7d')", run)
	require.NoError(t, err)
	return blocker
}

// TestCancelledAppendStoresNothingLater cancels an Append while its
// statement waits on the server (for an event of the run that another
// transaction inserts and has not committed): Append returns the
// context's error, and the server must not go on to store its events
// once the wait ends, after Append returned, as a host that gave up on
// the call (shutting down, or deleting the run) does not expect. The
// wait ends here as soon as Append returns: before the cancel request
// that pgx sends from a goroutine as it closes the connection arrives.
// The error says that the events may have been stored.
func TestCancelledAppendStoresNothingLater(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			app := sinktest.RunID(t) // at most 61 bytes: application_name keeps 63
			h, pg := newHistory(t, mode, pghistory.Options{}, func(c *pgxpool.Config) {
				c.ConnConfig.RuntimeParams["application_name"] = app
			})
			ctx := testenv.Context(t, 30*time.Second)
			run := sinktest.RunID(t)
			blocker := insertUncommitted(t, ctx, pg, run)

			actx, cancel := context.WithCancel(ctx)
			defer cancel()
			appended := make(chan error, 1)
			go func() { appended <- h.Append(actx, sinktest.Events(run, 1, 3)...) }()
			review7WaitFor(t, ctx, pg, "wait_event_type = 'Lock' AND application_name = '"+app+"'", "unnest")
			cancel()
			err := <-appended
			require.ErrorIs(t, err, context.Canceled)
			assert.ErrorIs(t, err, pghistory.ErrInDoubt, "a host can branch on the outcome in doubt")
			assert.Contains(t, err.Error(), "the context ended while the statement ran, which may have stored the events or not",
				"the error says that the outcome is not known")

			require.NoError(t, blocker.Rollback(ctx)) // the wait ends
			pg.WaitIdle(t, ctx, app)
			assert.Zero(t, count(t, pg, "progress_events"), "a cancelled Append stores nothing, then or later")
			assert.Zero(t, count(t, pg, "progress_runs"))
		})
	}
}

// TestAppendWhoseConnectionIsLost loses the connection of an Append while
// its statement waits on the server, which holds the whole statement and
// its COMMIT: the error says that the events may have been stored, and
// the server must not store them once the wait ends, after Append
// returned.
func TestAppendWhoseConnectionIsLost(t *testing.T) {
	t.Parallel()
	app := sinktest.RunID(t)
	var proxy *testenv.CutProxy
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, func(c *pgxpool.Config) {
		proxy = testenv.CutPostgres(t, c)
		c.ConnConfig.RuntimeParams["application_name"] = app
	})
	ctx := testenv.Context(t, 30*time.Second)
	run := sinktest.RunID(t)
	blocker := insertUncommitted(t, ctx, pg, run)

	appended := make(chan error, 1)
	go func() { appended <- h.Append(ctx, sinktest.Events(run, 1, 3)...) }()
	review7WaitFor(t, ctx, pg, "wait_event_type = 'Lock' AND application_name = '"+app+"'", "unnest")
	proxy.Cut()
	err := <-appended
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, pghistory.ErrInDoubt, "a host can branch on the outcome in doubt")
	assert.Contains(t, err.Error(), "the connection was lost while the statement ran, which may have stored the events or not",
		"the error says that the outcome is not known")

	require.NoError(t, blocker.Rollback(ctx)) // the wait ends
	pg.WaitIdle(t, ctx, app)
	assert.Zero(t, count(t, pg, "progress_events"), "an Append that lost its connection stores nothing later")
	assert.Zero(t, count(t, pg, "progress_runs"))
}
