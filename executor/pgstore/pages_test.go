package pgstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// tiedStart is the start of the tied records of putTiedRuns.
var tiedStart = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// putTiedRuns puts the records that TestListRunsPage and TestLatestRuns
// page through, of graph key: four without a start, six that start by
// twos on the same microsecond from tiedStart, and one an hour later, their IDs
// (run-11 down to run-01) in the reverse of ListRuns's order, so that
// the order comes of the start and the ID alike. It returns how many.
func putTiedRuns(t *testing.T, s *pgstore.Store, key string) int {
	t.Helper()
	t0 := tiedStart
	var starts []time.Time
	for range 4 {
		starts = append(starts, time.Time{}) // no start: first (last, newest first)
	}
	for i := range 6 {
		starts = append(starts, t0.Add(time.Duration(i/2)*time.Microsecond)) // ties, by twos
	}
	starts = append(starts, t0.Add(time.Hour))
	for i, st := range starts {
		rec := executor.Record{ID: fmt.Sprintf("run-%02d", len(starts)-i), GraphKey: key, Seconds: 10 + i, TriggeredBy: "test",
			Status: executor.RunSucceeded, StartedAt: st}
		require.NoError(t, s.PutRun(t.Context(), rec))
	}
	return len(starts)
}

// pageLimits are the limits a test of n records pages with: the
// smallest, those around n, and the largest.
func pageLimits(n int) []int {
	return []int{1, 2, 3, 4, 5, n - 1, n, n + 1, pgstore.MaxRunsPage}
}

// readPages reads every page of read, with limit, from cursor "" to a
// next cursor of "", and returns their records in turn and the number
// of pages. Every page holds at most limit records, a page before the
// last holds limit, and the pages end within n+1, n the records there
// are.
func readPages(t *testing.T, n, limit int, read func(cursor string, limit int) ([]executor.Record, string, error)) (got []executor.Record, pages int) {
	t.Helper()
	cursor := ""
	for {
		page, next, err := read(cursor, limit)
		require.NoError(t, err, "page %d", pages)
		pages++
		require.LessOrEqual(t, len(page), limit, "page %d", pages)
		got = append(got, page...)
		if next == "" {
			return got, pages
		}
		require.Len(t, page, limit, "a page before the last is full")
		require.Less(t, pages, n+1, "the pages do not end")
		cursor = next
	}
}

// putManyRuns puts 20,000 succeeded records, a minute apart, on graphs
// g0 to g4 (run-i on g(i%5)), and analyzes the table, so that a plan
// read with explain is the one a large table gets.
func putManyRuns(t *testing.T, pg *testenv.Postgres) {
	t.Helper()
	_, err := pg.Pool.Exec(t.Context(), fmt.Sprintf(`INSERT INTO "%[1]s".runs
	(id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at, counts, failed, error)
SELECT 'run-' || i, 'g' || (i %% 5), 30, '', '', '[]', 'succeeded', now() - i * interval '1 minute', now(), '{}', '{}', ''
FROM generate_series(1, 20000) AS i;
ANALYZE "%[1]s".runs`, pg.Schema))
	require.NoError(t, err)
}

// explain returns Postgres's plan of sql with args, its lines joined.
func explain(t *testing.T, pg *testenv.Postgres, sql string, args ...any) string {
	t.Helper()
	rows, err := pg.Pool.Query(t.Context(), "EXPLAIN "+sql, args...)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

// requirePageRefused requires that a read of a page (page, next, err)
// was refused with a *PageError naming field, which wraps ErrInvalidPage
// and executor.ErrInvalidRequest and reads want, and gave no page.
func requirePageRefused(t *testing.T, page []executor.Record, next string, err error, field, want string) {
	t.Helper()
	require.Error(t, err)
	assert.Nil(t, page)
	assert.Empty(t, next)
	var pe *pgstore.PageError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, field, pe.Field)
	assert.ErrorIs(t, err, pgstore.ErrInvalidPage)
	assert.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.Equal(t, want, err.Error())
}
