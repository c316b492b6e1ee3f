package pgstore_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// A host finds, at start-up, the runs that a crashed process left
// recorded as running, on every graph key. Before, it had only ListRuns
// of one key, or SQL of its own on the store's tables. RunsByStatus of
// RunRunning reads the partial index runs_running, which holds only the
// running records: on a table of thousands of ended runs it reads the
// three running ones, in the index's order, with no scan and no sort.
func TestRunsByStatusRunningUsesTheIndex(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	_, err := pg.Pool.Exec(ctx, fmt.Sprintf(`INSERT INTO "%[1]s".runs
	(id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at, counts, failed, error)
SELECT 'ended-' || i, 'g' || (i %% 50), 30, '', '', '[]', 'succeeded', now() - i * interval '1 minute', now(), '{}', '{}', ''
FROM generate_series(1, 5000) AS i;
INSERT INTO "%[1]s".runs
	(id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at, counts, failed, error)
SELECT 'left-' || i, 'h' || i, 30, '', '', '[]', 'running', now() - i * interval '1 hour', NULL, '{}', '{}', ''
FROM generate_series(1, 3) AS i;
ANALYZE "%[1]s".runs`, pg.Schema))
	require.NoError(t, err)

	rows, err := pg.Pool.Query(ctx, "EXPLAIN "+pgstore.RunsRunningSQL(pg.Schema))
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	plan := strings.Join(lines, "\n")
	assert.Regexp(t, `Index Scan (using|on) runs_running`, plan, "the running records are the partial index")
	assert.NotContains(t, plan, "Seq Scan", plan)
	assert.NotContains(t, plan, "Sort", "the index's order is the records' order:\n"+plan)

	got, err := s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err)
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{"left-3", "left-2", "left-1"}, ids, "oldest first")
	ended, err := s.RunsByStatus(ctx, executor.RunSucceeded)
	require.NoError(t, err)
	assert.Len(t, ended, 5000, "another status is a scan, but lists its records too")
}

// A status that Postgres text cannot hold belongs to no record: an empty
// list, not a driver error.
func TestRunsByStatusNotText(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	require.NoError(t, s.PutRun(t.Context(), executor.Record{ID: "r", GraphKey: "g", Status: executor.RunRunning}))
	for _, status := range []executor.RunStatus{"run\x00ning", "\xff"} {
		got, err := s.RunsByStatus(t.Context(), status)
		require.NoError(t, err, "%q", status)
		if d := cmp.Diff([]executor.Record{}, got); d != "" {
			t.Errorf("RunsByStatus(%q) (-want +got):\n%s", status, d)
		}
	}
}
