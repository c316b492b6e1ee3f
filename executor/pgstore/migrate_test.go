package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
)

// Migrate runs at the start of every process, while the others write (a
// rolling deploy, a scale-up). Its CREATE INDEX IF NOT EXISTS statements
// take a share lock on their table even when the index exists, and hold
// it until Migrate commits. They took runs first, then node_states; a
// DeleteGraph takes node_states (its states), then runs (its records).
// A DeleteGraph that held node_states when a Migrate had runs then waited
// for runs while Migrate waited for node_states, and Postgres aborted one
// of them as a deadlock (SQLSTATE 40P01): the new process failed to start,
// or the deletion failed. Here a holder keeps DeleteGraph inside its
// deletion of node states until Migrate holds runs and waits behind it,
// which makes that order certain; both must succeed.
func TestMigrateBesideDeleteGraph(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	st := dirty.State{Status: dirty.StatusClean, Rev: 1}
	_, err := s.Commit(ctx, "g", 0, []executor.Change{{ID: "n", State: st}})
	require.NoError(t, err)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "r", GraphKey: "g", Status: executor.RunSucceeded}))

	holder, err := pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(context.Background()) //nolint:errcheck // committed below
	_, err = holder.Exec(ctx, fmt.Sprintf(`SELECT 1 FROM "%s".node_states WHERE graph_key = 'g' FOR UPDATE`, pg.Schema))
	require.NoError(t, err)

	// waiting waits until n statements on the test's schema wait for a
	// lock.
	waiting := func(n int) {
		t.Helper()
		for {
			var got int
			require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND position($1 in query) > 0`, pg.Schema).Scan(&got))
			if got >= n {
				return
			}
			require.NoError(t, ctx.Err(), "statements waiting for a lock: %d, want %d", got, n)
			time.Sleep(5 * time.Millisecond) // polling the server, bounded by ctx
		}
	}
	deleted, migrated := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.DeleteGraph(ctx, "g")
		deleted <- err
	}()
	waiting(1) // DeleteGraph, in its deletion of node states, behind the holder
	go func() { migrated <- s.Migrate(ctx) }()
	waiting(2) // Migrate, behind DeleteGraph
	require.NoError(t, holder.Commit(ctx))

	assert.NoError(t, <-deleted, "DeleteGraph")
	assert.NoError(t, <-migrated, "Migrate")
	snap, err := s.Load(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, executor.Snapshot{Version: 2, States: map[string]dirty.State{}}, snap)
	runs, err := s.ListRuns(ctx, "g")
	require.NoError(t, err)
	assert.Empty(t, runs)
}
