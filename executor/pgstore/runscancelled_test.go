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

// fillRuns stores 5,000 ended runs and 3 cancelled ones in pg's schema,
// and analyzes the table.
func fillRuns(t *testing.T, pg *testenv.Postgres) {
	t.Helper()
	_, err := pg.Pool.Exec(t.Context(), fmt.Sprintf(`INSERT INTO "%[1]s".runs
	(id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at, counts, failed, error)
SELECT 'ended-' || i, 'g' || (i %% 50), 30, '', '', '[]', 'succeeded', now() - i * interval '1 minute', now(), '{}', '{}', ''
FROM generate_series(1, 5000) AS i;
INSERT INTO "%[1]s".runs
	(id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at, counts, failed, error, cancelled_by)
SELECT 'cut-' || i, 'h' || i, 30, '', '', '[]', 'cancelled', now() - i * interval '1 hour', now(), '{}', '{}', '', 'shutdown'
FROM generate_series(1, 3) AS i;
ANALYZE "%[1]s".runs`, pg.Schema))
	require.NoError(t, err)
}

// storeWithoutCancelledIndex returns a store on a new schema of the
// current layout holding fillRuns' records but not the index
// runs_cancelled, as a release before the index made it, and a context
// bounding the test.
func storeWithoutCancelledIndex(t *testing.T) (*pgstore.Store, *testenv.Postgres, context.Context) {
	t.Helper()
	s, pg := newStore(t)
	ctx := testenv.Context(t, 30*time.Second)
	fillRuns(t, pg)
	_, err := pg.Pool.Exec(ctx, fmt.Sprintf(`DROP INDEX "%s".runs_cancelled`, pg.Schema))
	require.NoError(t, err)
	return s, pg, ctx
}

// cancelledPlan returns the plan of RunsByStatus(RunCancelled) in pg's
// schema, run by pool.
func cancelledPlan(t *testing.T, pool *pgxpool.Pool, pg *testenv.Postgres) string {
	t.Helper()
	rows, err := pool.Query(t.Context(), "EXPLAIN "+pgstore.RunsCancelledSQL(pg.Schema))
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

// requireCancelled checks that RunsByStatus(RunCancelled) of s lists the
// three cancelled runs of fillRuns, oldest first.
func requireCancelled(t *testing.T, s *pgstore.Store) {
	t.Helper()
	got, err := s.RunsByStatus(t.Context(), executor.RunCancelled)
	require.NoError(t, err)
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{"cut-3", "cut-2", "cut-1"}, ids, "oldest first")
}

// ResumeCancelled, at each start-up, lists the cancelled runs of every
// key with RunsByStatus(RunCancelled), which scanned the whole runs table
// (every record kept, most of them ended long ago) for the few cancelled
// ones. It now reads the partial index runs_cancelled, as RunsByStatus of
// running runs reads runs_running: no scan, and no sort.
func TestRunsByStatusCancelledUsesTheIndex(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	fillRuns(t, pg)
	plan := cancelledPlan(t, pg.Pool, pg)
	assert.Regexp(t, `Index Scan (using|on) runs_cancelled`, plan, "the cancelled records are the partial index")
	assert.NotContains(t, plan, "Seq Scan", plan)
	assert.NotContains(t, plan, "Sort", "the index's order is the records' order:\n"+plan)
	requireCancelled(t, s)
}

// The index on cancelled runs came without a new layout version, so that
// the processes of the release before, which a rolling deploy keeps
// running beside the new ones (and which refuse a newer layout at their
// start), go on with the schema: the new release's Migrate adds it to a
// schema of the current layout that an older release migrated, and a
// Migrate by a role that may not create it (one that only writes rows)
// leaves it out without an error, RunsByStatus then scanning the table.
func TestMigrateAddsTheCancelledIndexToACurrentSchema(t *testing.T) {
	t.Parallel() // its own schemas
	for _, tc := range []struct {
		name      string
		rowWriter bool
	}{{"as the owner", false}, {"as a role that only writes rows", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // its own schema
			s, pg, ctx := storeWithoutCancelledIndex(t)
			pool := pg.Pool
			if tc.rowWriter {
				pool = pg.RowWriterPool(t)
				var err error
				s, err = pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
				require.NoError(t, err)
			}
			require.NoError(t, s.Migrate(ctx))
			var version int
			require.NoError(t, pg.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT max(version) FROM "%s".schema_version`, pg.Schema)).Scan(&version))
			assert.Equal(t, 7, version, "the layout version is the same")
			plan := cancelledPlan(t, pool, pg)
			if tc.rowWriter {
				assert.Contains(t, plan, "Seq Scan", "no index: the scan")
			} else {
				assert.Regexp(t, `Index Scan (using|on) runs_cancelled`, plan)
			}
			requireCancelled(t, s)
			require.NoError(t, s.Migrate(ctx), "again")
		})
	}
}
